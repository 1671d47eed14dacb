"""The on-demand fleet simulation's report: the table, the explanation drawn from the run's numbers, the page
docs/fleet-simulation.md and its chart. The model and the command line are simulate_fleet.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from cache_extension.runner import PREFETCH_BUDGET
from cache_extension.lanes import THREADS_PER_LANE as FETCH_THREADS  # one source in one region: one lane

from local_lambda.simulate_common import plot_series, reproduce_section
from local_lambda.simulate_common import duration_text as _duration
from local_lambda.simulate_common import number as _n


def table(results: dict[str, Any]) -> str:
    naive, ours = results["strategies"]["naive"], results["strategies"]["ours"]

    def row(label: str, show: Callable[[dict], str]) -> str:
        return f"| {label} | {show(naive)} | {show(ours)} |"

    return "\n".join([
        f"| | original sample (naive) | {_ours_label(ours)} |",
        "|---|---|---|",
        row("API calls (GetParameters)", lambda s: _n(s["api_calls"])),
        row("throttled calls", lambda s: f"{_n(s['throttled_calls'])} ({s['throttled_pct']:.1f}%)"),
        row("peak calls/s (quota: " + f"{results['parameters']['tps']:g})", lambda s: _n(s["peak_calls_per_s"])),
        row("mean calls/s, second half of the run", lambda s: _n(s["mean_calls_per_s_second_half"])),
        row("values per successful call", lambda s: _n(s["values_per_successful_call"])),
        row("reads", lambda s: _n(s["reads"])),
        row("failed reads", lambda s: f"{_n(s['failed_reads'])} ({s['failed_reads_pct']:.2f}%)"),
        row("failed reads by cause", lambda s: ", ".join(f"{code} {count:,}" for code, count
                                                         in s["failed_reads_by_code"].items()) or "none"),
        row("invokes with a failed read", lambda s: f"{_n(s['failed_invokes'])} ({s['failed_invokes_pct']:.2f}%)"),
        row("reads served stale by policy", lambda s: _n(s["stale_served"])),
        row("age of served values p50 / p99", lambda s: f"{_duration(s['age_p50_s'])} / {_duration(s['age_p99_s'])}"),
        row("p99 staleness (superseded upstream for)", lambda s: _duration(s["staleness_p99_s"])),
        row("reads of a superseded version", lambda s: f"{s['superseded_reads_pct']:.1f}%"),
        row("INIT (prefetch) p50 / p99 / max", lambda s: " / ".join(_duration(s[key] / 1000) if s[key] is not None
                                                                    else "n/a" for key in ("init_p50_ms", "init_p99_ms",
                                                                                           "init_max_ms"))),
        row("retries / circuit openings", lambda s: f"{_n(s['store_counters']['Retries'])} / "
                                                   f"{_n(s['store_counters']['CircuitOpened'])}"),
        row("refresh-ahead entries", lambda s: _n(s["store_counters"]["RefreshAhead"])),
        row("extension log lines (warning / error)", lambda s: f"{_n(s['log_lines'].get('warning', 0))} / "
                                                               f"{_n(s['log_lines'].get('error', 0))}"),
    ])


def explanation(results: dict[str, Any]) -> list[str]:
    """The paragraphs under "Why the numbers differ", each claim drawn from this run's numbers."""
    p = results["parameters"]
    naive, ours = results["strategies"]["naive"], results["strategies"]["ours"]
    burst_rate = p["envs"] / max(p["burst_s"], 1.0)
    naive_burst = burst_rate * p["items"]
    ours_burst = burst_rate * math.ceil(p["items"] / ours["batch_size"])

    def pace(calls: float) -> str:
        return "under the quota" if calls <= p["tps"] else f"{calls / p['tps']:.1f}x the quota"

    paragraphs = []
    text = (f"The cold starts come at about {burst_rate:,.0f} environments a second. The original sample makes one "
            f"call per item: {naive_burst:,.0f} calls a second, {pace(naive_burst)}. ")
    if naive["throttled_calls"]:
        text += (f"{naive['throttled_pct']:.0f}% of its calls were throttled (peak {naive['peak_calls_per_s']:,} "
                 "calls/s). With no retry, no stale value and no error hold, a read whose fetch failed fails, and "
                 "the next invoke's read calls SSM again, so the failed reads keep the load up until the fleet has "
                 f"fetched every item once at the quota's pace{_cleared(naive)}. ")
    text += ("With no batching and no refresh-ahead, every item is fetched again in a call of its own when its TTL "
             f"runs out: {_n(naive['mean_calls_per_s_second_half'])} calls/s in the second half of the run (ours: "
             f"{_n(ours['mean_calls_per_s_second_half'])}).")
    paragraphs.append(text)
    label = _ours_label(ours)
    text = (f"{label[0].upper()}{label[1:]} asks for up to {ours['batch_size']} items in one GetParameters call: "
            f"the cold starts cost {ours_burst:,.0f} calls a second, {pace(ours_burst)}. Entries near expiry are "
            "refreshed on an INVOKE (refresh-ahead), an expired value inside its stale window is served while one "
            f"refresh runs, and failures are retried after a backoff. It made "
            f"{naive['api_calls'] / max(ours['api_calls'], 1):,.1f}x fewer calls ({ours['api_calls']:,} against "
            f"{naive['api_calls']:,}) and had {ours['failed_reads']:,} failed reads against {naive['failed_reads']:,}.")
    paragraphs.append(text)
    if ours["throttled_calls"]:
        retries, opened = ours["store_counters"]["Retries"], ours["store_counters"]["CircuitOpened"]
        during = ours["throttled_during_burst"]
        when = ("all of them after the cold starts, at its refreshes" if not during else
                f"{during:,} of them during the cold starts")
        text = (f"Ours was throttled too: {ours['throttled_calls']:,} calls ({when}; peak {ours['peak_calls_per_s']:,} "
                f"calls/s). Its successful calls carried {_n(ours['values_per_successful_call'])} values each on "
                f"average, out of a possible {min(ours['batch_size'], p['items'])}")
        if ours["policy"]["jitter"] > 0 and (ours["values_per_successful_call"] or 0) < 0.8 * min(ours["batch_size"],
                                                                                                  p["items"]):
            text += (": each entry draws its own TTL jitter, so the entries one call fetched fall due for "
                     "refresh-ahead on different invokes and are refreshed in several smaller calls "
                     "(`--policy jitter=0` shows the difference)")
        policy = ours["policy"]
        longest = min(policy["backoff_cap"], policy["backoff_base"] * 2 ** max(policy["retries"] - 1, 0))
        text += f". {retries:,} retries, each at most {_duration(longest)} after the call before it, added to the load"
        if opened:
            text += f"; the environments' circuits opened {opened:,} times"
        if ours["stale_served"]:
            text += f"; {ours['stale_served']:,} reads were answered from the stale window meanwhile"
        text += "."
        paragraphs.append(text)
    paragraphs.append(
        "Staleness is bounded by the TTL in both: a value fetched just before it changes upstream is served until "
        f"the entry is refreshed. The parameters change every {_duration(p['change_s'])}; refresh-ahead refreshes "
        f"ours before its TTL runs out (p99 staleness {_duration(ours['staleness_p99_s'])} against "
        f"{_duration(naive['staleness_p99_s'])}).")
    return [line for paragraph in paragraphs for line in (paragraph, "")]


def _cleared(summary: dict[str, Any]) -> str:
    second = summary["throttling_cleared_s"]
    return f" (throttling stopped at {_duration(second)})" if second is not None else ""


def _ours_label(summary: dict[str, Any]) -> str:
    overrides = summary["policy_overrides"]
    if not overrides:
        return "ours (default Policy)"
    return "ours (Policy with " + ", ".join(f"{name}={value}" for name, value in overrides.items()) + ")"


def _overrides_text(summary: dict[str, Any]) -> str:
    overrides = summary["policy_overrides"]
    return " (the defaults)" if not overrides else " with " + ", ".join(f"`{n}={v}`" for n, v in overrides.items())


def markdown(results: dict[str, Any]) -> str:
    p = results["parameters"]
    ours = results["strategies"]["ours"]
    lines = [
        "# Fleet simulation: the cache against SSM's rate limit",
        "",
        f"`{results['command']}`, {results['date']}, {results['wall_s']:.0f} s of wall time for "
        f"{_duration(p['duration_s'])} of virtual time per strategy (the numbers, per second too: "
        "[fleet-simulation.json](fleet-simulation.json)). Generated: run the command again rather than editing this "
        "page.",
        "",
        f"{p['envs']:,} Lambda execution environments cold-start within {_duration(p['burst_s'])} and read the same "
        f"{p['items']} SSM parameters on every invoke, for {_duration(p['duration_s'])}, against an account whose SSM "
        f"quota is {p['tps']:g} calls per second. Two strategies meet the same workload: the original sample's "
        f"and {_ours_label(ours)}.",
        "",
        table(results),
        "",
        "![calls per second, throttled calls and failed reads over time](fleet-simulation.png)",
        "",
        "## Why the numbers differ",
        "",
        *explanation(results),
        *path_section(results),
        "## What was simulated",
        "",
        "The extension's own code, not a model of it. Each environment holds a real `cache_extension.store.Store` "
        "with a real `Policy` and the real SSM fetcher (`cache_extension.fetchers.ssm.ParameterFetcher`), whose "
        "botocore client is the simulated SSM. A throttled call raises a real `botocore.exceptions.ClientError` "
        "(`ThrottlingException`, HTTP 400), which the fetcher maps to a transient `FetchError` as in Lambda. Each "
        "environment's `Metrics` counts retries, circuit openings and refresh-ahead as `GET /stats` would. Simulated:",
        "",
        "- **Time.** A discrete-event scheduler (a heap of callbacks in virtual time) is every Store's `clock`, its "
        f"executor ({FETCH_THREADS} fetch threads per environment, as the extension runs) and its `later` "
        "(retry timers). Nothing sleeps.",
        "- **Lambda's freeze.** An environment runs during its INIT and while an invoke is in flight; in between it "
        "is frozen. A retry timer or a queued fetch that falls due while it is frozen runs at its next invoke. A "
        "call already sent when the freeze comes is answered by SSM on time (and counts against the quota then); "
        "the environment handles the answer when it thaws, and its clock says so.",
        f"- **INIT.** The extension's prefetch (`store.prefetch()`); INIT ends when every prefetch has settled or "
        f"after {PREFETCH_BUDGET:g} s (the extension's budget), then the invoke that caused the cold start runs.",
        f"- **Invokes.** Cold starts uniformly spread over {_duration(p['burst_s'])}; after each invoke the "
        f"environment idles for an exponential time with mean {_duration(p['interval_s'])}. On every invoke the "
        "extension's `store.refresh_ahead()` runs (as on an INVOKE event), then the function reads its "
        f"{p['items']} items one after another, as through a thin client: `store.read()`, waiting on the Future "
        f"when it returns one, for at most {_duration(p['timeout_s'])} (the clients' timeout). A read that is not "
        f"answered in time, or answered with an error, is a failed read. The function then works "
        f"{_duration(p['work_s'])} before it returns and the environment freezes.",
        f"- **SSM.** One account: a token bucket of {p['tps']:g} calls/s (burst {p['tps']:g}) over every call from "
        f"every environment, answered {_duration(p['latency_s'])} after it is sent. Each parameter gets a new "
        f"version every {_duration(p['change_s'])}, at staggered times, so a served value's staleness is known: "
        "how long its version had already been superseded upstream when it was read (0 when current).",
        "- **The original sample** is `policy.NAIVE` (no jitter, no stale, no retries, no circuit, no refresh-ahead, "
        "no error hold) with the same fetcher limited to one item per call (`batch_size = 1`): GetParameters with "
        "one name stands in for the sample's unbatched GetParameter; the simulated quota counts every call alike. "
        "Its items have no stale window. The Store's single flight (concurrent readers of an entry share one fetch) "
        "stays on; with the function's reads one at a time it only joins a read to a fetch already in flight.",
        f"- **Ours** is `Policy()`{_overrides_text(ours)} with the fetcher's batch of "
        f"{ours['batch_size']} and a stale window of {_duration(p['stale_s'])} on every item.",
        "",
        "Age is the time since the served value was fetched (as the `Age` header reports it). Staleness percentiles "
        "count every served read, current ones as 0. Extension log lines are the warning and error lines the "
        "Store wrote (one CloudWatch Logs line each in Lambda).",
        "",
        *reproduce_section(results, ours["policy_overrides"],
                           "`scripts/simulate-fleet --help` lists the options. The run is deterministic for a seed: "
                           "the same command writes the same numbers (wall times aside)."),
    ]
    return "\n".join(lines)


def path_section(results: dict[str, Any]) -> list[str]:
    """The row for a `parameters:` group by path (simulate_paths.py), when the run has it."""
    if "paths" not in results:
        return []
    from local_lambda import simulate_paths

    return ["## A group by path", "",
            "One environment of this workload whose config reads 100 parameters, listed by name or as one "
            "`parameters:` group with `path:`: SSM calls at INIT and in the hour after it (the extension's real "
            "Store, Policy and SSM fetcher; SSM answers at once and gives a NextToken only when more remain). A path "
            "costs what its names would, one page per 10 parameters at INIT and on each refresh-ahead, and its "
            "listing also picks up parameters added or removed under it.", "",
            *simulate_paths.table(results["paths"]), ""]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = results["parameters"]
    strategies = results["strategies"]
    colours = {"naive": "#d62728", "ours": "#1f77b4"}
    labels = {"naive": "original sample", "ours": _ours_label(strategies["ours"])}
    figure, axes = plt.subplots(3, 1, figsize=(12, 11), sharex=True)
    figure.suptitle(f"{p['envs']:,} environments, {p['items']} parameters, cold starts within "
                    f"{_duration(p['burst_s'])}, SSM quota {p['tps']:g} calls/s  ({results['command']})", fontsize=10)
    panels = [("calls_per_s", "API calls/s"), ("throttled_per_s", "throttled calls/s"),
              ("failed_reads_per_s", "failed reads/s")]
    for ax, (series, title) in zip(axes, panels):
        plot_series(ax, results, series, colours, labels)
        ax.set_ylabel(f"{title} (symlog)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("virtual time (minutes)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
