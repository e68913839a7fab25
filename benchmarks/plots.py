"""The report's plots (docs/img/bench-*.png), drawn from the same results as its text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import GOALS

INDEX_COLOURS = {"flat": "#3f51b5", "hnsw": "#ef6c00"}


def _ratios_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    measured = [(g.label, results[g.section][g.key]) for g in GOALS if g.key in results.get(g.section, {})]
    labels, values = [label for label, _ in measured], [value for _, value in measured]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(labels, values, color=INDEX_COLOURS["flat"])
    for label, value in measured:
        ax.text(value, label, f" {value}", va="center")
    ax.set_xlabel("ratio (same-run timings)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scale_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for kind, colour in INDEX_COLOURS.items():
        kind_rows = [r for r in rows if r["index_type"] == kind]
        left.plot([r["chunks"] for r in kind_rows], [r["search_p50_ms"] for r in kind_rows], "o-", color=colour, label=kind)
        right.plot([r["chunks"] for r in kind_rows], [r["rss_mb"] for r in kind_rows], "o-", color=colour, label=kind)
    left.set(xscale="log", xlabel="chunks", ylabel="search p50 (ms)")
    right.set(xscale="log", xlabel="chunks", ylabel="service RSS (MB)")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(results: dict[str, Any], images: Path) -> None:
    """Write bench-ratios.png and (when the run measured scale) bench-scale.png into ``images``."""
    import matplotlib

    matplotlib.use("Agg")
    images.mkdir(parents=True, exist_ok=True)
    _ratios_plot(results, images / "bench-ratios.png")
    if results.get("scale"):
        _scale_plot(results["scale"], images / "bench-scale.png")
