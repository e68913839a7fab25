"""docs/benchmarks.md from the results of one run: prose templates filled from the measurements.

Every number the report prints is a value stored in ``benchmarks/results.json`` (measured, or
derived from measurements by ``benchmarks.figures``) or one of the goals and thresholds named
below. Each verdict ("met", "gains little", "faster") is decided here from the measured values
and those named thresholds. A sentence whose measurements the results lack is left out; it is
never filled with a typed figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Results = dict[str, Any]


@dataclass(frozen=True)
class RatioGoal:
    """A ratio of two same-run timings, with the goal it should meet (if any)."""

    label: str
    section: str
    key: str
    at_least: float | None = None
    at_most: float | None = None

    @property
    def target(self) -> str:
        """The goal as printed: "≥ 0.9", "≤ 1.5", or "—" when the ratio has none."""
        if self.at_least is not None:
            return f"≥ {self.at_least:g}"
        if self.at_most is not None:
            return f"≤ {self.at_most:g}"
        return "—"

    def met(self, value: float) -> bool | None:
        """Whether ``value`` meets the goal; None when there is no goal."""
        if self.at_least is not None:
            return value >= self.at_least
        if self.at_most is not None:
            return value <= self.at_most
        return None


# The goals of issue #7 ("Benchmarks: how close to the machine's limit"): targets set before measuring.
GOALS = (
    RatioGoal("index build ÷ raw forward (throughput)", "indexing", "ratio_build_vs_raw", at_least=0.9),
    RatioGoal("re-index one page ÷ full build (time)", "indexing", "ratio_reindex_vs_full", at_most=0.02),
    RatioGoal("/v1/search p50 ÷ query embedding", "http", "ratio_search_vs_embedding", at_most=1.5),
    RatioGoal("/v1/ask p50 ÷ /v1/search p50", "http", "ratio_ask_vs_search"),
    RatioGoal("mkdocs build with plugin ÷ plain", "mkdocs", "ratio_plugin_vs_plain", at_most=1.15),
)
# Issue #7's goal for a faster embedding backend: this many times faster for indexing and for a query...
ONNX_SPEEDUP_GOAL = 2.0
# ...losing at most this much recall@5 on the labelled questions.
ONNX_RECALL_LOSS_ALLOWED = 0.01
# A judgment, not a measurement: a speed-up under half the goal's gain (2× is +100%, so +50%) is "little".
LITTLE_GAIN_BELOW = 1.5
# A judgment: speed ratios within 5% of 1 read "about as fast" rather than faster or slower.
SAME_SPEED_BAND = 0.05
# The numbers the report may print that are not measurements (the test checks every other number).
THRESHOLDS: tuple[float, ...] = (*(t for g in GOALS for t in (g.at_least, g.at_most) if t is not None),
                                 ONNX_SPEEDUP_GOAL, ONNX_RECALL_LOSS_ALLOWED, LITTLE_GAIN_BELOW)

# A sentence: alternative templates, the most detailed first; the first whose measurements exist is used.
Sentence = tuple[str, ...]

# Why a ratio can miss its goal, told from this run's numbers; shown only for a ratio that misses.
WHY_MISSED: dict[str, tuple[Sentence, ...]] = {
    "ratio_build_vs_raw": ((
        "the build took {indexing[build_seconds]} s where the model's forward pass alone took "
        "{indexing[raw_forward_seconds]} s on the same {indexing[chunks]} chunks; the difference is reading and "
        "chunking the pages, BM25 and writing the artifact.",),),
    "ratio_reindex_vs_full": ((
        "embedding {indexing[reindex_embedded]} chunk(s) is the only model work, yet the re-index took "
        "{indexing[reindex_seconds]} s against {indexing[build_seconds]} s for a full build: it still reads all "
        "{indexing[pages]} pages and writes a new build of the artifact (FAISS, BM25, metadata).",
        "embedding {indexing[reindex_embedded]} chunk(s) is the only model work, yet the re-index took "
        "{indexing[reindex_seconds]} s against {indexing[build_seconds]} s for a full build: it still reads every "
        "page and writes a new build of the artifact (FAISS, BM25, metadata).",
    ),),
    "ratio_search_vs_embedding": (
        ("of a {http[search_p50_ms]} ms search (p50), the query embedding takes {http[raw_query_embedding_p50_ms]} ms, "
         "the rest of the ranking in-process (BM25, FAISS, fusion, re-ranking) {http[ranking_beyond_embedding_ms]} ms, "
         "and snippets, JSON and HTTP on loopback {http[serving_overhead_ms]} ms (differences of medians, so "
         "approximate).",
         "a search ({http[search_p50_ms]} ms p50) is one query embedding ({http[raw_query_embedding_p50_ms]} ms) plus "
         "{http[search_beyond_embedding_ms]} ms of work without the model: BM25 and FAISS, fusion, re-ranking, "
         "snippets, JSON and HTTP.",),
        ("Only the embedding shrinks with a faster model, so a faster backend raises this ratio even as searches get "
         "faster.",),
        ("The ONNX int8 backend, for one, embedded a query in {onnx[onnx_int8_query_p50_ms]} ms in this run, against "
         "{onnx[torch_query_p50_ms]} ms on torch.",),
    ),
    "ratio_plugin_vs_plain": (
        ("the plugin adds {mkdocs[plugin_added_seconds]} s to a {mkdocs[plain_seconds]} s build: it loads and validates "
         "every page's front matter, writes each page's header and renders the catalog pages, which a plain build "
         "does not do.",),
        ("Loading and validating the {mkdocs[content_pages]} pages alone takes {mkdocs[content_load_seconds]} s "
         "in-process.",),
    ),
}

DETAIL_ROWS = (
    "| pages indexed | {indexing[pages]} |",
    "| chunks / tokens indexed | {indexing[chunks]} / {indexing[tokens]} |",
    "| index build / raw forward | {indexing[build_seconds]} s / {indexing[raw_forward_seconds]} s |",
    "| index on disk | {indexing[artifact_kb_per_chunk]} KB a chunk, word-piece vectors included |",
    "| re-index after one edit | {indexing[reindex_seconds]} s, {indexing[reindex_embedded]} chunk(s) embedded |",
    "| /v1/search p50 / p99 (one client) | {http[search_p50_ms]} / {http[search_p99_ms]} ms |",
    "| /v1/search p50 / p99 ({http[concurrent_clients]} concurrent clients) | {http[search_concurrent_p50_ms]} / "
    "{http[search_concurrent_p99_ms]} ms |",
    "| /v1/ask p50 / p99 | {http[ask_p50_ms]} / {http[ask_p99_ms]} ms |",
    "| raw query embedding p50 | {http[raw_query_embedding_p50_ms]} ms |",
    "| search in-process p50 (no HTTP, snippets or JSON) | {http[inprocess_search_p50_ms]} ms |",
)


def fill(template: str, results: Results) -> str | None:
    """``template`` filled from ``results``, or None when a measurement it names is missing."""
    try:
        return template.format_map(results)
    except (KeyError, IndexError):
        return None


def first_filled(alternatives: Sentence, results: Results) -> str | None:
    """The first alternative whose measurements all exist in ``results``."""
    return next((text for text in (fill(t, results) for t in alternatives) if text is not None), None)


def tell(sentences: Sequence[Sentence], results: Results) -> str:
    """The sentences that this run's measurements can fill, joined."""
    return " ".join(text for text in (first_filled(s, results) for s in sentences) if text)


def speed_phrase(speedup: float) -> str:
    """How a speed ratio reads: "N× faster", "N×, about as fast", or "N× as fast (slower)"."""
    if speedup >= 1 + SAME_SPEED_BAND:
        return f"{speedup}× faster"
    if speedup > 1 - SAME_SPEED_BAND:
        return f"{speedup}×, about as fast"
    return f"{speedup}× as fast (slower)"


def _yes_no(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "no")


def goals_section(results: Results) -> list[str]:
    """The ratios against their goals, and what limits the ones that miss."""
    measured = [(g, results[g.section][g.key]) for g in GOALS if g.key in results.get(g.section, {})]
    if not measured:
        return []
    lines = ["| Measure | Ratio | Goal | Met |", "| --- | --- | --- | --- |"]
    lines += [f"| {g.label} | {value} | {g.target} | {_yes_no(g.met(value))} |" for g, value in measured]
    misses = [(g, value) for g, value in measured if g.met(value) is False]
    if misses:
        lines += ["", "What limits the ratios that miss their goal, from this run's figures:", ""]
        for goal, value in misses:
            why = tell(WHY_MISSED.get(goal.key, ()), results)
            lines.append(f"- **{goal.label}** ({value}, goal {goal.target})" + (f": {why}" if why else ""))
    return lines


def details_section(results: Results) -> list[str]:
    """The timings and counts behind the ratios."""
    rows = [row for row in (fill(t, results) for t in DETAIL_ROWS) if row is not None]
    return ["", "| Detail | Value |", "| --- | --- |", *rows] if rows else []


def scale_section(results: Results) -> list[str]:
    """Service memory and search latency on synthetic corpora."""
    rows = results.get("scale")
    if not rows:
        return []
    intro = tell((("Synthetic indexes carry no word-piece vectors, so their searches skip the re-ranking stage.",),
                  ("The index built from the playbooks in this run takes {indexing[artifact_kb_per_chunk]} KB a chunk on "
                   "disk with them.",)), results)
    columns = [("Chunks", "{chunks:,}"), ("Index", "{index_type}"), ("Service RSS (MB)", "{rss_mb}"),
               ("Disk (KB a chunk)", "{disk_kb_per_chunk}"), ("search p50 (ms)", "{search_p50_ms}"),
               ("p99 (ms)", "{search_p99_ms}")]
    if not any("disk_kb_per_chunk" in row for row in rows):  # runs before the disk size was measured
        columns = [c for c in columns if c[0] != "Disk (KB a chunk)"]
    lines = ["", "## Scale (synthetic corpora)", "", intro, "", "| " + " | ".join(name for name, _ in columns) + " |",
             "|" + " --- |" * len(columns)]
    row_template = "| " + " | ".join(cell for _, cell in columns) + " |"
    lines += [row_template.format_map({"disk_kb_per_chunk": "—", **row}) for row in rows]
    return lines


def onnx_verdict(onnx: dict[str, Any]) -> list[str]:
    """Sentences judging the int8 backend by the goal and the named thresholds."""
    speedups = {"indexing": onnx["speedup_index"], "queries": onnx["speedup_query"]}
    quality_holds = onnx["recall@5_change"] >= -ONNX_RECALL_LOSS_ALLOWED
    met = min(speedups.values()) >= ONNX_SPEEDUP_GOAL and quality_holds
    out = [f"Goal of issue #7 (at least {ONNX_SPEEDUP_GOAL:g}× faster for indexing and for queries, at most "
           f"{ONNX_RECALL_LOSS_ALLOWED:g} recall@5 lost): **{'met' if met else 'not met'}**."]
    little = [f"{task} ({speedup}×)" for task, speedup in speedups.items() if speedup < LITTLE_GAIN_BELOW]
    if little:
        out.append(f"int8 gains little for {' and '.join(little)}: under the {LITTLE_GAIN_BELOW:g}× counted as a real gain.")
    best = max(speedups, key=lambda task: speedups[task])
    other = min(speedups, key=lambda task: speedups[task])
    if speedups[best] >= 1 + SAME_SPEED_BAND and speedups[best] / speedups[other] >= 1 + SAME_SPEED_BAND:
        out.append(f"The biggest gain is for {best} ({speedups[best]}×).")
    change = f"recall@5 {onnx['recall@5_change']:+}, MRR@10 {onnx['mrr@10_change']:+}"
    if quality_holds:
        out.append(f"Retrieval quality holds: {change}.")
    else:
        out.append(f"Retrieval quality drops beyond the {ONNX_RECALL_LOSS_ALLOWED:g} recall@5 allowed: {change}.")
    if quality_holds and speedups["queries"] >= ONNX_SPEEDUP_GOAL:
        out.append("`KB_BACKEND=onnx-int8` pays off for serving, where query latency matters.")
    elif quality_holds and speedups["queries"] >= 1 + SAME_SPEED_BAND:
        out.append("`KB_BACKEND=onnx-int8` makes queries faster in this run, by less than the goal.")
    else:
        out.append("In this run `KB_BACKEND=onnx-int8` does not pay off for serving.")
    return out


def onnx_section(results: Results) -> list[str]:
    """The int8 backend against torch fp32: speed, quality and the verdict."""
    onnx = results.get("onnx")
    if not onnx:
        return []
    return ["", "## ONNX Runtime int8 backend", "", "| | torch fp32 | ONNX int8 | change |", "| --- | --- | --- | --- |",
            f"| indexing (s) | {onnx['torch_index_seconds']} | {onnx['onnx_int8_index_seconds']} | "
            f"{speed_phrase(onnx['speedup_index'])} |",
            f"| query p50 (ms) | {onnx['torch_query_p50_ms']} | {onnx['onnx_int8_query_p50_ms']} | "
            f"{speed_phrase(onnx['speedup_query'])} |",
            f"| recall@5 | {onnx['recall@5_torch']} | {onnx['recall@5_onnx_int8']} | {onnx['recall@5_change']:+} |",
            f"| MRR@10 | {onnx['mrr@10_torch']} | {onnx['mrr@10_onnx_int8']} | {onnx['mrr@10_change']:+} |",
            "", " ".join(onnx_verdict(onnx))]


def load_section(results: Results) -> list[str]:
    """The load test: concurrent clients mixing searches and asks."""
    load = results.get("load")
    if not load:
        return []
    intro = first_filled((
        "{load[clients]} concurrent clients for {load[duration_s]:g} s, {load[search_share]:.0%} search / "
        "{load[ask_share]:.0%} ask, on loopback: **{load[errors]} errors**.",
        "{load[clients]} concurrent clients for {load[duration_s]:g} s mixing search and ask, on loopback: "
        "**{load[errors]} errors**."), results)
    lines = ["", "## Load test", "", intro or "", "", "| Endpoint | requests | p50 (ms) | p99 (ms) |",
             "| --- | --- | --- | --- |"]
    for endpoint in ("search", "ask"):
        row = load[endpoint]
        lines.append(f"| /v1/{endpoint} | {row['requests']} | {row['p50_ms']} | {row['p99_ms']} |")
    return lines


def render(results: Results) -> str:
    """The whole of docs/benchmarks.md for ``results`` (already passed through ``figures.derive``)."""
    run = ", in a quick run with smaller samples" if results.get("quick") else ""
    lines = ["---", "title: Benchmarks", "---", "", "# Benchmarks", "",
             f"Measured by `scripts/bench` on {results['machine']} ({results['date']}){run}. Each goal is a ratio of "
             "two timings taken in the same run, so the machine's speed cancels out; the goals are those of issue #7. "
             "Every figure on this page comes from `benchmarks/results.json` of that run.", ""]
    lines += goals_section(results)
    lines += details_section(results)
    lines += scale_section(results)
    lines += onnx_section(results)
    lines += load_section(results)
    lines += ["", "![Ratios against their goals](img/bench-ratios.png)", ""]
    if results.get("scale"):
        lines += ["![Search latency and memory by corpus size](img/bench-scale.png)", ""]
    return "\n".join(lines)
