"""docs/benchmarks.png: the bench run's numbers as one figure of eight panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bench_report import SHORT_LABELS

COLOURS = {"floor": "#9e9e9e", "extension": "#1f77b4", "direct": "#d62728", "near": "#2ca02c",
           "powertools": "#ff7f0e"}


def _bars(ax: Any, labels: list[str], p50: list[float], p99: list[float], colours: list[str], unit: str) -> None:
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], p50, height=0.4, color=colours, label="p50")
    ax.barh([i - 0.2 for i in y], p99, height=0.4, color=colours, alpha=0.4, label="p99")
    for i, (a, b) in enumerate(zip(p50, p99)):
        ax.text(a, i + 0.2, f" {a:.3g}", va="center", fontsize=7)
        ax.text(b, i - 0.2, f" {b:.3g}", va="center", fontsize=7)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(p99) * 3)
    ax.set_xlabel(f"{unit} (log scale); dark p50, light p99")


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(2, 4, figsize=(24, 10))
    figure.suptitle(f"Lambda cache extension: {results['command']}  ({results['machine']['cpus']} CPUs, "
                    f"Python {results['machine']['python']}, {results['machine']['date']})", fontsize=11)

    def latency_panel(ax: Any, connection: str, title: str) -> None:
        rows = [r for r in results["latency"]["rows"] if r["connection"] == connection and r.get("p50_ms") is not None]
        _bars(ax, [SHORT_LABELS.get(r["id"], r["label"]) for r in rows][::-1], [r["p50_ms"] for r in rows][::-1],
              [r["p99_ms"] for r in rows][::-1], [COLOURS[r["kind"]] for r in rows][::-1], "ms")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title, fontsize=10)

    latency_panel(axes[0][0], "keep-alive", "cache hit over HTTP, keep-alive (near cache off)")
    latency_panel(axes[0][1], "new connection", "cache hit over HTTP, new connection per call")

    ax = axes[0][2]
    near = [r for r in results.get("near_cache", {}).get("rows", []) if r.get("p50_us") is not None]
    if near:
        _bars(ax, [SHORT_LABELS.get(r["id"], r["label"]) for r in near][::-1], [r["p50_us"] for r in near][::-1],
              [r["p99_us"] for r in near][::-1],
              [COLOURS["powertools" if r["id"].startswith("powertools") else "near"] for r in near][::-1], "µs")
        ax.axvline(30, color=COLOURS["direct"], linestyle="--", linewidth=1, label="target 30 µs")
        ax.legend(fontsize=8)
    ax.set_title("near cache: repeated read of one name, in process", fontsize=10)

    t = results["throughput"]
    ax = axes[0][3]
    bars = [(f"floor\n{t['connections']} conn.", t["floor"], "floor"),
            (f"extension\n{t['connections']} conn.", t["extension"], "extension")]
    many = t.get("many", {})
    if many.get("floor") and many.get("extension"):
        bars += [(f"floor\n{many['connections']} conn.", many["floor"], "floor"),
                 (f"extension\n{many['connections']} conn.", many["extension"], "extension")]
    values = [row["requests_per_s"] for _, row, _ in bars]
    ax.bar([label for label, _, _ in bars], values, color=[COLOURS[kind] for _, _, kind in bars])
    for i, (_, row, _) in enumerate(bars):
        ax.text(i, row["requests_per_s"], f"{row['requests_per_s']:,.0f}\np99 {row['p99_ms'] or 0:.2f} ms",
                ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("requests/s")
    ax.set_ylim(0, max(values) * 1.25)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"throughput (extension: {t['extension_vs_floor']:.1%} of the floor at {t['connections']})",
                 fontsize=10)

    sizes = results["startup"]["sizes"]
    labels = [str(r["items"]) for r in sizes]
    x = range(len(sizes))
    ax = axes[1][0]
    register = [r["start_to_register_ms"] for r in sizes]
    init = [r["start_to_init_done_ms"] for r in sizes]
    ax.bar([i - 0.2 for i in x], register, width=0.4, label="start → register", color="#2ca02c")
    ax.bar([i + 0.2 for i in x], init, width=0.4, label="start → INIT done", color=COLOURS["extension"])
    for i in x:
        ax.text(i - 0.2, register[i], f"{register[i]:.0f}", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, init[i], f"{init[i]:.0f}", ha="center", va="bottom", fontsize=8)
    bare = (results.get("bare_start") or {}).get("median_ms")
    if bare:
        ax.axhline(bare, color=COLOURS["floor"], linestyle=":", linewidth=1, label=f"bare python3 {bare:.0f} ms")
        ax.axhline(bare * 20, color=COLOURS["direct"], linestyle="--", linewidth=1, label="20x bare (INIT target)")
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("configured items")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.set_title("start-up (median)", fontsize=10)

    ax = axes[1][1]
    rss = [r["rss_after_prefetch_mib"] for r in sizes]
    ax.bar(list(x), rss, color=COLOURS["extension"])
    for i in x:
        ax.text(i, rss[i], f"{rss[i]:.1f} MiB\n{sizes[i]['aws_calls']} AWS calls", ha="center", va="bottom",
                fontsize=8)
    ax.axhline(40, color=COLOURS["direct"], linestyle="--", linewidth=1, label="target 40 MiB (3, 50 items)")
    ax.axhline(48, color=COLOURS["direct"], linestyle=":", linewidth=1, label="target < 48 MiB (500 items)")
    ax.set_xticks(list(x), labels)
    ax.set_xlabel("configured items")
    ax.set_ylabel("MiB")
    ax.set_ylim(0, max(rss + [48]) * 1.25)
    ax.legend(fontsize=8)
    ax.set_title("RSS after prefetch, and AWS calls of the prefetch", fontsize=10)

    ax = axes[1][2]
    imports = results.get("imports")
    if imports:
        groups = [(name, row) for name, row in imports["groups"].items() if row["self_us"]][:12][::-1]
        values = [row["self_us"] / 1000 for _, row in groups]
        ax.barh([name for name, _ in groups], values, color=COLOURS["extension"])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=7)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel("ms of import (self), -X importtime")
    ax.set_title("import time by package, one launch with 3 items", fontsize=10)

    ax = axes[1][3]
    zips = [r for r in results["layer"]["zips"] if r["zip_mib"] is not None]
    names = [f"{r['arch']}\npy{r['python']}" for r in zips]
    ax.bar([i - 0.2 for i in range(len(zips))], [r["zip_mib"] for r in zips], width=0.4, label="zipped",
           color=COLOURS["extension"])
    ax.bar([i + 0.2 for i in range(len(zips))], [r["unzipped_mib"] for r in zips], width=0.4, label="unzipped",
           color=COLOURS["floor"])
    ax.axhline(10, color=COLOURS["direct"], linestyle="--", linewidth=1, label="target 10 MiB zipped")
    ax.set_xticks(list(range(len(zips))), names, fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_ylim(0, max([r["unzipped_mib"] for r in zips] + [10]) * 1.4)
    ax.legend(fontsize=8, loc="upper left", ncols=3)
    ax.set_title("layer size", fontsize=10)

    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
