"""Issue 13's targets, judged on the numbers of one run (reported in docs/benchmarks.md, never asserted).

Each target: (id, issue item, what, comparison, bound, unit). A comparison of None is a row that is reported
beside the targets and not judged. judge() takes the whole results document and gives one row per target."""

from __future__ import annotations

from typing import Any

from .bench_common import CONNECTIONS, MANY_CONNECTIONS

TARGETS: tuple[tuple[str, int | None, str, str | None, float | None, str], ...] = (
    ("near_cache_python", 1, "repeated read of one name through the Python client (near cache), p50; and no slower "
     "than Powertools' cached get_parameter", "<=", 30.0, "µs"),
    ("near_cache_node", 1, "the same through the Node.js client, p50", None, None, "µs"),
    ("near_cache_java", 1, "the same through the Java client, p50", None, None, "µs"),
    ("init_vs_bare", 2, "start → INIT done, 3 items, as a multiple of a bare `python3 -S -E -c pass` start", "<=",
     20.0, "x"),
    ("init_vs_bare_aim", 2, "the same, the issue's aim", "<=", 12.0, "x"),
    ("rss_after_prefetch", 3, "RSS after prefetch, 3 and 50 items", "<=", 40.0, "MiB"),
    ("rss_after_prefetch_500", 3, "RSS after prefetch, 500 items", "<", 48.0, "MiB"),
    ("throughput_vs_floor", 4, f"throughput over {CONNECTIONS} keep-alive connections, share of the raw floor's",
     ">=", 0.30, "share"),
    ("throughput_many", 4, f"{MANY_CONNECTIONS} concurrent keep-alive connections: p50 and p99 under load", None,
     None, "ms"),
    ("register_vs_bare", 5, "start → register (every size), as a multiple of the bare interpreter start", "<=", 2.0,
     "x"),
    ("http_vs_direct", 6, "HTTP hit through the Python client (near cache off, keep-alive), times faster than a "
     "direct boto3 call to moto", ">=", 20.0, "x"),
    ("layer_zip", None, "layer zip, per architecture", "<=", 10.0, "MiB"),
)

SYMBOLS = {"<=": "≤", "<": "<", ">=": "≥"}


def _by_id(rows: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows or []}


def _us(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f} µs"


def measurements(results: dict[str, Any]) -> dict[str, tuple[float | None, str, bool | None]]:
    """Per target id: (the value compared with the bound, its text, an extra condition or None)."""
    latency = _by_id(results.get("latency", {}).get("rows"))
    near = _by_id(results.get("near_cache", {}).get("rows"))
    bare = (results.get("bare_start") or {}).get("median_ms")
    sizes = results.get("startup", {}).get("sizes", [])
    through = results.get("throughput", {})
    layers = [row for row in results.get("layer", {}).get("zips", []) if row.get("zip_mib") is not None]
    out: dict[str, tuple[float | None, str, bool | None]] = {}

    python = near.get("python_near", {}).get("p50_us")
    powertools = near.get("powertools_cached", {}).get("p50_us")
    no_slower = None if python is None or powertools is None else python <= powertools
    text = f"{_us(python)}; Powertools' cached get_parameter {_us(powertools)}"
    if python is not None and powertools is not None:
        text += f" ({powertools / python:.1f}x the client's)" if no_slower else " (**the client is slower**)"
    out["near_cache_python"] = (python, text, no_slower)
    for key, row_id in (("near_cache_node", "node_near"), ("near_cache_java", "java_near")):
        row = near.get(row_id, {})
        value = row.get("p50_us")
        text = _us(value) if value is None else f"{value:.2f} µs (p99 {row['p99_us']:.2f} µs)"
        if value is not None and row.get("near_cache_seen") is False:
            text += f"; no faster than its HTTP row ({row.get('http_p50_us') or 0:.0f} µs): no near cache yet?"
        out[key] = (value, text, None)

    three = next((row for row in sizes if row["items"] == 3), None)
    if three and bare:
        ratio = three["start_to_init_done_ms"] / bare
        out["init_vs_bare"] = (ratio, f"{ratio:.1f}x ({three['start_to_init_done_ms']:.1f} ms vs {bare:.1f} ms, "
                                      "medians)", None)
    else:
        out["init_vs_bare"] = (None, "not measured", None)
    out["init_vs_bare_aim"] = out["init_vs_bare"]

    small = [row for row in sizes if row["items"] <= 50]
    out["rss_after_prefetch"] = ((max(row["rss_after_prefetch_mib"] for row in small), ", ".join(
        f"{row['rss_after_prefetch_mib']:.1f} MiB ({row['items']} items)" for row in small), None)
        if small else (None, "not measured", None))
    large = next((row for row in sizes if row["items"] == 500), None)
    out["rss_after_prefetch_500"] = ((large["rss_after_prefetch_mib"], f"{large['rss_after_prefetch_mib']:.1f} MiB",
                                      None) if large else (None, "not measured", None))

    share = through.get("extension_vs_floor")
    out["throughput_vs_floor"] = (share, "not measured" if share is None else
                                  f"{share:.1%} ({through['extension']['requests_per_s']:,.0f} vs "
                                  f"{through['floor']['requests_per_s']:,.0f} requests/s)", None)
    many = (through.get("many") or {}).get("extension")
    if many and many.get("p50_ms") is not None:
        out["throughput_many"] = (many["p50_ms"], f"p50 {many['p50_ms']:.3f} ms, p99 {many['p99_ms']:.3f} ms "
                                                  f"({many['requests_per_s']:,.0f} requests/s, "
                                                  f"{many['errors']} non-200)", None)
    else:
        out["throughput_many"] = (None, "not measured", None)

    if sizes and bare:
        ratios = [(row["start_to_register_ms"] / bare, row) for row in sizes]
        out["register_vs_bare"] = (max(r for r, _ in ratios), ", ".join(
            f"{r:.1f}x ({row['start_to_register_ms']:.1f} ms, {row['items']} items)" for r, row in ratios)
            + f" vs {bare:.1f} ms", None)
    else:
        out["register_vs_bare"] = (None, "not measured", None)

    http, direct = latency.get("python_keepalive", {}).get("p50_ms"), latency.get("direct_boto3", {}).get("p50_ms")
    out["http_vs_direct"] = ((direct / http, f"{direct / http:.1f}x ({http:.3f} ms vs {direct:.3f} ms, boto3 against "
                                             "moto on loopback)", None) if http and direct
                             else (None, "not measured", None))

    out["layer_zip"] = (max(row["zip_mib"] for row in layers) if layers else None,
                        ", ".join(f"{row['zip_mib']:.1f} MiB ({row['arch']}, Python {row['python']})"
                                  for row in layers) or "not measured", None)
    return out


def compare(value: float, comparison: str, bound: float) -> bool:
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[comparison]


def bound_text(comparison: str | None, bound: float | None, unit: str) -> str:
    if comparison is None or bound is None:
        return "reported"
    number = f"{bound:.0%}" if unit == "share" else f"{bound:g}{unit}" if unit == "x" else f"{bound:g} {unit}"
    return f"{SYMBOLS[comparison]} {number}"


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of TARGETS with the value measured, its text for the headline table, and whether it is met
    (None: reported only, or not measured). A target with an extra condition is met only when both hold."""
    measured = measurements(results)
    out = []
    for target_id, item, what, comparison, bound, unit in TARGETS:
        value, text, condition = measured[target_id]
        if comparison is None or bound is None or value is None:
            met = None
        else:
            met = compare(value, comparison, bound) and condition is not False
        out.append({"id": target_id, "item": item, "what": what, "target": bound_text(comparison, bound, unit),
                    "comparison": comparison, "bound": bound, "unit": unit,
                    "measured": None if value is None else round(value, 4), "measured_text": text, "met": met,
                    "judged": comparison is not None})
    return out
