"""Health, stats, EMF metrics and JSON logs of the running extension."""

from __future__ import annotations

import json
import time

from conftest import unique

from test_end_to_end import parameters_config, poll, put_parameter


def test_health_needs_no_token_and_stats_count_without_values(start_extension, moto):
    ext = start_extension()
    health = ext.request("/health", token=None)
    assert (health.status, json.loads(health.body)) == (200, {"status": "ready"})
    assert ext.request("/stats", token=None).status == 401
    for _ in range(3):
        ext.read("parameters", "CacheExtensions_Parameter1")
    ext.read("parameters", "NotConfigured")
    stats = json.loads(ext.request("/stats").body)
    assert stats["items"] == 4
    assert stats["cache"]["parameters"]["Hits"] == 3
    assert stats["upstream"]["ssm:GetParameters"]["calls"] == 2  # parameters, and references apart
    assert stats["upstream"]["dynamodb:BatchGetItem"]["errors"] == {}
    body = json.dumps(stats)
    assert "MyParameter" not in body and "MySecret" not in body and "CacheExtensions_Parameter1" not in body


def test_health_says_starting_until_the_prefetch_is_done(start_extension, moto):
    name = unique("/health/slow")
    put_parameter(moto, name, "slow health value")
    moto.delay("AmazonSSM.GetParameters", 1.5, times=1)
    ext = start_extension(parameters_config(name), wait=False)

    def health():
        try:
            return ext.request("/health", token=None)
        except ConnectionRefusedError:
            return None

    starting = poll(health, timeout=10, interval=0.02)
    assert (starting.status, json.loads(starting.body)["status"]) == (503, "starting")
    ext.emulator.wait_init(timeout=15)
    assert ext.request("/health", token=None).status == 200


def test_emf_metrics_at_shutdown_and_json_logs(start_extension, moto):
    name = unique("/emf/p")
    put_parameter(moto, name, "emf value")
    moto.fail("AmazonSSM.GetParameters", status=400, code="AccessDeniedException", times=1)
    ext = start_extension(parameters_config(name), env={
        "CACHE_EXTENSION_METRICS": "emf", "AWS_LAMBDA_FUNCTION_NAME": "emf-function", "AWS_LAMBDA_LOG_FORMAT": "JSON"})
    ext.emulator.invoke()
    # The denied prefetch's error is held for a second; then one read fetches (a miss) and one hits.
    failed_reads = 0
    while (reply := ext.read("parameters", name)).status == 502 and failed_reads < 100:
        failed_reads += 1
        time.sleep(0.05)
    assert reply.text == "emf value"
    assert ext.read("parameters", name).text == "emf value"
    ext.emulator.shutdown()
    lines = [json.loads(line) for line in ext.output.splitlines() if line.startswith("{")]
    logs = [line for line in lines if "_aws" not in line]
    assert logs and all(set(line) == {"timestamp", "level", "message", "logger"} for line in logs)
    assert any("prefetched" in line["message"] for line in logs)
    [emf] = [line for line in lines if "_aws" in line]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LambdaCacheExtension"
    assert emf["FunctionName"] == "emf-function"
    # The denied prefetch left nothing; held errors and the fetching read are misses, the last read hit.
    assert (emf["Misses"], emf["Hits"], emf["UpstreamErrors"], emf["UpstreamCalls"]) == (failed_reads + 1, 1, 1, 2)
