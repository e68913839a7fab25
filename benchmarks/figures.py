"""Derived figures (ratios, differences, shares) computed from the measurements of one run.

``derive`` is the only place a benchmark figure is computed from others; it reads only what
``benchmarks.measure`` stored, so running it again on ``benchmarks/results.json`` gives the
same figures. The report then prints stored values and never computes a number itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Results = dict[str, Any]


def _ratio(numerator: float, denominator: float, digits: int) -> float:
    return round(numerator / denominator, digits)


def _indexing(section: dict[str, Any]) -> None:
    tokens, build, raw = section["tokens"], section["build_seconds"], section["raw_forward_seconds"]
    section["build_tokens_per_s"] = _ratio(tokens, build, 1)
    section["raw_tokens_per_s"] = _ratio(tokens, raw, 1)
    section["ratio_build_vs_raw"] = _ratio(raw, build, 3)  # throughput ratio: raw time over build time
    section["ratio_reindex_vs_full"] = _ratio(section["reindex_seconds"], build, 4)
    if "artifact_bytes" in section:
        section["artifact_kb_per_chunk"] = _ratio(section["artifact_bytes"] / 1024, section["chunks"], 1)


def _http(section: dict[str, Any]) -> None:
    embedding, search = section["raw_query_embedding_p50_ms"], section["search_p50_ms"]
    section["ratio_search_vs_embedding"] = _ratio(search, embedding, 2)
    section["ratio_ask_vs_search"] = _ratio(section["ask_p50_ms"], search, 2)
    section["search_beyond_embedding_ms"] = round(search - embedding, 2)
    for key in ("ranking_beyond_embedding_ms", "serving_overhead_ms"):
        section.pop(key, None)
    in_process = section.get("inprocess_search_p50_ms")
    # Medians only split into parts when they nest; on a busy machine they may not, and then no split is given.
    if in_process is not None and embedding <= in_process <= search:
        section["ranking_beyond_embedding_ms"] = round(in_process - embedding, 2)
        section["serving_overhead_ms"] = round(search - in_process, 2)


def _mkdocs(section: dict[str, Any]) -> None:
    plugin, plain = section["with_plugin_seconds"], section["plain_seconds"]
    section["ratio_plugin_vs_plain"] = _ratio(plugin, plain, 3)
    section["plugin_added_seconds"] = round(plugin - plain, 3)


def _scale(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if "disk_bytes" in row:
            row["disk_kb_per_chunk"] = _ratio(row["disk_bytes"] / 1024, row["chunks"], 1)


def _onnx(section: dict[str, Any]) -> None:
    section["speedup_index"] = _ratio(section["torch_index_seconds"], section["onnx_int8_index_seconds"], 2)
    section["speedup_query"] = _ratio(section["torch_query_p50_ms"], section["onnx_int8_query_p50_ms"], 2)
    section["recall@5_change"] = round(section["recall@5_onnx_int8"] - section["recall@5_torch"], 4)
    section["mrr@10_change"] = round(section["mrr@10_onnx_int8"] - section["mrr@10_torch"], 4)
    section.pop("meets_goal", None)  # older runs stored a verdict; verdicts are the report's, from named thresholds


def _load(section: dict[str, Any]) -> None:
    if "ask_share" in section:
        section["search_share"] = round(1 - section["ask_share"], 4)


DERIVERS: dict[str, Callable[[Any], None]] = {
    "indexing": _indexing, "http": _http, "mkdocs": _mkdocs, "scale": _scale, "onnx": _onnx, "load": _load,
}


def derive(results: Results) -> Results:
    """A copy of ``results`` with every derived figure (re)computed for the sections it holds."""
    out = copy.deepcopy(results)
    for name, add_figures in DERIVERS.items():
        if name in out:
            add_figures(out[name])
    return out
