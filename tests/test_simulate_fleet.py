"""scripts/simulate-fleet: small fleets in virtual time, through the extension's real Store, Policy and SSM fetcher.

No number here is a stored expectation: each test compares what one run reports with what the simulated SSM counted
itself, or one strategy with the other, or one run with another."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from local_lambda import simulate_fleet, simulate_managed, simulate_managed_report

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--envs", "40", "--duration", "3m", "--ttl", "1m", "--stale", "1m", "--change", "1m"]


class CountingSSM(simulate_fleet.SimulatedSSM):
    """The simulated SSM with a tally of its own, kept apart from the one the report is built from."""

    instances: list[CountingSSM] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen = 0
        self.refused = 0
        self.call_times: list[float] = []
        CountingSSM.instances.append(self)

    def get_parameters(self, Names, WithDecryption=False):  # noqa: N803
        self.seen += 1
        self.call_times.append(self.scheduler.now)
        try:
            return super().get_parameters(Names=Names, WithDecryption=WithDecryption)
        except Exception as exc:
            if exc.response["Error"]["Code"] == "ThrottlingException":
                self.refused += 1
            raise


@pytest.fixture
def counting_ssm(monkeypatch):
    CountingSSM.instances = []
    monkeypatch.setattr(simulate_fleet, "SimulatedSSM", CountingSSM)
    return CountingSSM.instances


def run(args: list[str], strategy: str):
    return simulate_fleet.simulate(simulate_fleet.parser().parse_args(args), strategy)


def without_wall_time(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "wall_s"}


def test_small_run_writes_the_three_files_with_the_ssm_counts(tmp_path, counting_ssm):
    out = tmp_path / "out"
    assert simulate_fleet.main([*SMALL, "--burst", "2s", "--out", str(out)]) == 0

    results = json.loads((out / "fleet-simulation.json").read_text())
    assert (out / "fleet-simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "fleet-simulation.md").read_text()
    assert results["command"] in text and "| API calls (GetParameters) |" in text

    # One simulated SSM per strategy, in the order they ran; the report says what each one counted.
    assert [ssm.seen > 0 for ssm in counting_ssm] == [True, True]
    for ssm, name in zip(counting_ssm, ("naive", "ours")):
        summary = results["strategies"][name]
        assert summary["api_calls"] == ssm.seen == sum(summary["series"]["calls_per_s"])
        assert summary["throttled_calls"] == ssm.refused == sum(summary["series"]["throttled_per_s"])
        assert summary["reads"] == sum(summary["series"]["reads_per_s"])
        assert summary["failed_reads"] == sum(summary["series"]["failed_reads_per_s"])
        assert summary["failed_reads"] == sum(summary["failed_reads_by_code"].values())
        served = summary["hits"] + summary["misses"] + summary["stale_served"]
        assert summary["reads"] == served + summary["failed_reads"]

    naive, ours = results["strategies"]["naive"], results["strategies"]["ours"]
    assert f"| API calls (GetParameters) | {naive['api_calls']:,} | {ours['api_calls']:,} |" in text
    assert naive["batch_size"] == 1 and naive["values_per_successful_call"] == 1.0
    assert ours["batch_size"] == 10 and ours["policy"]["stale_while_revalidate"] and not naive["policy"]["retries"]
    # The real Store ran the real policy: refresh-ahead is the extension's own counter.
    assert ours["store_counters"]["RefreshAhead"] > 0 and naive["store_counters"]["RefreshAhead"] == 0


@pytest.mark.parametrize("burst", ["2s", "30s"])
def test_ours_makes_fewer_calls_and_fails_no_more_reads(burst):
    naive, _ = run([*SMALL, "--burst", burst], "naive")
    ours, _ = run([*SMALL, "--burst", burst], "ours")
    assert ours["api_calls"] < naive["api_calls"]
    assert ours["failed_reads"] <= naive["failed_reads"]
    assert ours["reads"] > 0 and naive["reads"] > 0


def test_the_naive_strategy_is_throttled_when_the_burst_exceeds_the_quota(counting_ssm):
    # 40 environments starting within 1 s ask for 400 single-item calls: ten times the 40 TPS quota.
    fast, _ = run(["--envs", "40", "--burst", "1s", "--duration", "1m"], "naive")
    assert fast["throttled_calls"] > 0 and fast["failed_reads"] > 0
    assert set(fast["failed_reads_by_code"]) == {"ThrottlingException"}
    assert fast["peak_calls_per_s"] > 40
    # The same fleet starting over a minute stays under the quota: the bucket is not always refusing.
    slow, _ = run(["--envs", "40", "--burst", "60s", "--duration", "2m"], "naive")
    assert slow["throttled_calls"] == 0 and slow["failed_reads"] == 0
    # And a lower quota throttles what this one did not.
    low, _ = run(["--envs", "40", "--burst", "60s", "--duration", "2m", "--tps", "2"], "naive")
    assert low["throttled_calls"] > 0


def test_runs_are_deterministic_for_a_seed():
    args = [*SMALL, "--burst", "3s", "--envs", "30"]
    for strategy in ("naive", "ours"):
        first, _ = run(args, strategy)
        second, _ = run(args, strategy)
        assert without_wall_time(first) == without_wall_time(second)
        other, _ = run([*args, "--seed", "2"], strategy)
        assert without_wall_time(other) != without_wall_time(first)


def test_staleness_measures_versions_superseded_upstream():
    # Parameters that never change while the run lasts are never stale; ones that change every 10 s often are.
    frozen, _ = run(["--envs", "10", "--duration", "2m", "--ttl", "1m", "--change", "1h"], "ours")
    assert frozen["staleness_p99_s"] == 0 and frozen["superseded_reads_pct"] == 0
    changing, _ = run(["--envs", "10", "--duration", "2m", "--ttl", "1m", "--change", "10s"], "ours")
    assert changing["staleness_p99_s"] > 0 and changing["superseded_reads_pct"] > 0
    assert changing["staleness_p99_s"] <= 60 + 10 + 1  # a TTL, a change period and an invoke gap at most


def test_a_frozen_environment_sends_nothing(monkeypatch, counting_ssm):
    """Every call goes out while its environment runs (INIT or an invoke): a timer that falls due while it is frozen
    waits for the next invoke. One environment, so every call is its own."""
    running: list[list[float]] = []
    deferred: list[float] = []
    env_class = simulate_fleet.Environment
    cold_start, invoke, freeze, timer = env_class.cold_start, env_class.invoke, env_class._freeze, env_class._timer

    def start(method):
        def wrapped(self):
            if not running or running[-1][1] != float("inf"):  # the first invoke follows INIT without a freeze
                running.append([self.scheduler.now, float("inf")])
            method(self)
        return wrapped

    def stop(self):
        running[-1][1] = self.scheduler.now
        freeze(self)

    def on_timer(self, function, args):
        if not self.running:
            deferred.append(self.scheduler.now)
        timer(self, function, args)

    monkeypatch.setattr(env_class, "cold_start", start(cold_start))
    monkeypatch.setattr(env_class, "invoke", start(invoke))
    monkeypatch.setattr(env_class, "_freeze", stop)
    monkeypatch.setattr(env_class, "_timer", on_timer)
    # A quota of one call per 20 s: the prefetch gets through, most refreshes are throttled; with no stale window
    # the reads that find nothing servable wait, give up after the client's 1 s, and their retries (backoffs of
    # seconds) fall due while the environment is frozen.
    summary, fleet = run(["--envs", "1", "--items", "3", "--ttl", "15s", "--stale", "0s", "--interval", "3s",
                          "--work", "1ms", "--duration", "5m", "--tps", "0.05", "--policy", "backoff_base=2", "--policy", "backoff_cap=10",
                          "--policy", "retries=4", "--policy", "retry_deadline=60",
                          "--policy", "circuit_threshold=100"],
                         "ours")
    assert deferred, "no retry fell due while the environment was frozen: the test proves nothing"
    assert summary["store_counters"]["Retries"] > 0 and summary["throttled_calls"] > 0
    latency = fleet.options.latency
    for answered in counting_ssm[0].call_times:
        sent = answered - latency
        assert any(begin - 1e-9 <= sent <= end + 1e-9 for begin, end in running), (answered, running)


def test_help_works():
    run_ = subprocess.run([str(ROOT / "scripts" / "simulate-fleet"), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert run_.returncode == 0, run_.stderr
    for option in ("--envs", "--burst", "--items", "--ttl", "--stale", "--interval", "--duration", "--seed", "--tps",
                   "--out", "--policy"):
        assert option in run_.stdout


# -- --mode managed-instances (simulate_managed.py) -------------------------------------------------------------------

MANAGED = ["--envs", "2", "--processes", "6", "--duration", "4m", "--ttl", "1m", "--stale", "1m", "--change", "45s",
           "--interval", "2s", "--start", "2s"]


class CountingPaddedSSM(CountingSSM, simulate_managed.PaddedSSM):
    """The managed mode's simulated SSM, with the same tally of its own."""


def run_managed(args: list[str], strategy: str):
    options = simulate_managed_report.parser().parse_args(args)
    return simulate_managed.simulate(options, strategy)


def test_managed_instances_run_writes_its_own_three_files_with_the_ssm_counts(tmp_path, monkeypatch):
    CountingSSM.instances = []
    monkeypatch.setattr(simulate_managed, "PaddedSSM", CountingPaddedSSM)
    out = tmp_path / "out"
    assert simulate_fleet.main(["--mode", "managed-instances", *MANAGED, "--no-memory", "--out", str(out)]) == 0

    assert not (out / "fleet-simulation.json").exists()  # the classic mode's files are left alone
    results = json.loads((out / "fleet-simulation-managed-instances.json").read_text())
    assert (out / "fleet-simulation-managed-instances.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "fleet-simulation-managed-instances.md").read_text()
    assert results["command"].startswith("scripts/simulate-fleet --mode managed-instances") and results["command"] in text
    assert list(results["strategies"]) == list(simulate_managed.STRATEGIES)
    for ssm, summary in zip(CountingSSM.instances, results["strategies"].values(), strict=True):
        assert summary["api_calls"] == ssm.seen == sum(summary["series"]["calls_per_s"]) > 0
        assert summary["throttled_calls"] == ssm.refused
        assert summary["reads"] == summary["hits"] + summary["misses"] + summary["stale_served"] + \
            summary["failed_reads"] == sum(summary["series"]["reads_per_s"])
    row = " | ".join(f"{s['api_calls']:,}" for s in results["strategies"].values())
    assert f"| SSM calls | {row} |" in text


@pytest.mark.parametrize("tps", ["40", "1"])
def test_one_shared_extension_calls_less_than_a_cache_per_process_and_serves_within_ttl_and_stale(tps):
    args = [*MANAGED, "--tps", tps]
    one, _ = run_managed(args, "get_parameter")
    batched, _ = run_managed(args, "get_parameters_by_name")
    shared, run = run_managed(args, "extension")
    assert shared["api_calls"] <= batched["api_calls"] <= one["api_calls"]
    assert shared["failed_reads"] <= min(one["failed_reads"], batched["failed_reads"])
    assert shared["age_max_s"] <= 60 + 60  # TTL + stale, whatever the quota did
    assert one["age_max_s"] <= 60  # a per-process cache serves a value within its TTL, or calls
    if tps == "1":  # 6 processes start together, 10 names each: the per-process caches are throttled
        assert one["throttled_calls"] > 0 and one["sdk_retries"] > 0
    # Copies: one per value per cache (once it got it), and the extension's cache is the environment's.
    assert shared["copies_held"] <= 2 * 10 < one["copies_held"] <= 2 * 6 * 10
    if tps == "40":
        assert one["copies_held"] == batched["copies_held"] == 2 * 6 * 10
        assert shared["copies_held"] == 2 * 10 and shared["value_bytes_held"] == 2 * 10 * 1024
    # The timer never spun: every pass that found work due started some, at most two passes at one instant.
    assert shared["timer"]["due_but_idle"] == 0 and shared["timer"]["most_runs_at_one_instant"] <= 2
    assert all(environment.timer.runs > 0 for environment in run.environments)


def test_the_timer_refreshes_without_invokes_so_a_change_upstream_is_served_within_a_ttl(monkeypatch):
    """No invoke reaches the extension; its timer alone refreshes. A parameter that changes upstream is served new
    within one TTL, and no read ever waits for a fetch or gets a stale value. Without the timer the same run fails
    the same checks."""
    args = [*MANAGED, "--stale", "0s", "--duration", "5m"]
    shared, _ = run_managed(args, "extension")
    assert shared["timer"]["entries_started"] > 0 and shared["store_counters"]["RefreshAhead"] > 0
    assert shared["misses"] == 0 and shared["stale_served"] == 0 and shared["failed_reads"] == 0
    assert 0 < shared["staleness_max_s"] < 60 and shared["age_max_s"] < 60

    monkeypatch.setattr(simulate_managed.RefreshTimer, "_run", lambda self, token: None)
    untimed, _ = run_managed(args, "extension")
    assert untimed["store_counters"]["RefreshAhead"] == 0
    assert untimed["misses"] > 0  # every expiry makes a reader wait for a fetch


def test_managed_runs_are_deterministic_for_a_seed():
    for strategy in simulate_managed.STRATEGIES:
        first, _ = run_managed(MANAGED, strategy)
        second, _ = run_managed(MANAGED, strategy)
        assert without_wall_time(first) == without_wall_time(second)


def test_managed_help_lists_its_options():
    run_ = subprocess.run([str(ROOT / "scripts" / "simulate-fleet"), "--mode", "managed-instances", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert run_.returncode == 0, run_.stderr
    for option in ("--envs", "--processes", "--value-bytes", "--sdk-attempts", "--policy", "--out", "--no-memory"):
        assert option in run_.stdout


def test_a_group_by_path_costs_what_its_names_would():
    """The report's row for a path of 100 parameters (simulate_paths.py): GetParametersByPath pages of 10 at INIT
    and on each refresh-ahead, as many calls as GetParameters for the same names."""
    from local_lambda import simulate_paths

    rows = simulate_paths.rows(100, 300.0, 5.0, 1)
    assert rows["path"]["init"] == rows["names"]["init"] == 10
    assert rows["path"]["hour"] == rows["names"]["hour"] > 0
    assert rows["path"]["hour"] % 10 == 0  # whole listings only: members are never fetched one by one
    text = "\n".join(simulate_paths.table({"parameters": {"count": 100, "ttl_s": 300.0, "interval_s": 5.0},
                                           "rows": rows}))
    assert f"| one group by path (`path:`, GetParametersByPath, 10 a page) | 10 | {rows['path']['hour']} |" in text
