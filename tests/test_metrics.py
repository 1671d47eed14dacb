"""Counters and CloudWatch Embedded Metric Format documents."""

import json

from cache_extension.metrics import CACHE_COUNTERS, EmfEmitter, Metrics


def test_snapshot_counts_cache_outcomes_and_upstream_calls():
    metrics = Metrics()
    for _ in range(3):
        metrics.count("parameters", "Hits")
    metrics.count("secrets", "Misses")
    metrics.upstream_call("ssm:GetParameters", 0.010, None)
    metrics.upstream_call("ssm:GetParameters", 0.030, "ThrottlingException")
    snapshot = metrics.snapshot()
    assert snapshot["cache"]["parameters"] == {**dict.fromkeys(CACHE_COUNTERS, 0), "Hits": 3}
    assert snapshot["cache"]["secrets"]["Misses"] == 1
    assert snapshot["upstream"]["ssm:GetParameters"] == {
        "calls": 2, "errors": {"ThrottlingException": 1}, "latencyMsAvg": 20.0, "latencyMsMax": 30.0}


def test_emf_documents_report_the_change_since_the_last_one():
    metrics = Metrics()
    metrics.count("parameters", "Hits")
    metrics.upstream_call("ssm:GetParameters", 0.004, None)
    document = json.loads(metrics.emf_line("Team/Cache", {"FunctionName": "fn"}, now=1700000000.0))
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert document["_aws"]["Timestamp"] == 1700000000000
    assert directive["Namespace"] == "Team/Cache" and directive["Dimensions"] == [["FunctionName"]]
    declared = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert declared["Hits"] == "Count" and declared["UpstreamLatency"] == "Milliseconds"
    assert all(name in document for name in declared)  # every declared metric has a value
    assert (document["FunctionName"], document["Hits"], document["UpstreamCalls"], document["UpstreamLatency"]) == ("fn", 1, 1, 4.0)
    assert metrics.emf_line("Team/Cache", {"FunctionName": "fn"}) is None  # nothing new
    metrics.count("parameters", "Hits")
    assert json.loads(metrics.emf_line("Team/Cache", {"FunctionName": "fn"}))["Hits"] == 1


def test_emitter_writes_at_most_once_an_interval_on_invoke():
    now = [0.0]
    lines = []
    metrics = Metrics()
    emitter = EmfEmitter(metrics, "ns", {}, lines.append, interval=60, clock=lambda: now[0])
    metrics.count("parameters", "Hits")
    emitter.on_invoke()
    assert lines == []
    now[0] = 61
    emitter.on_invoke()
    assert len(lines) == 1
    metrics.count("parameters", "Hits")
    now[0] = 62
    emitter.on_invoke()
    emitter.flush()  # SHUTDOWN flushes whatever is left
    assert len(lines) == 2
