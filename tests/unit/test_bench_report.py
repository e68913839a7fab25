"""The benchmark report: every figure and every verdict comes from the results of one run."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from benchmarks.figures import derive
from benchmarks.report import LITTLE_GAIN_BELOW, ONNX_SPEEDUP_GOAL, THRESHOLDS, render, speed_phrase
from tests.conftest import ROOT

# A number standing on its own: not part of a name like p50, recall@5, /v1/, int8 or issue #7.
NUMBER = re.compile(r"(?<![\w@#/.+-])([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?!\w)(?!\.\d)(%?)")


def raw_results() -> dict[str, Any]:
    """Measurements as benchmarks.measure stores them (no derived figures), with distinct values."""
    return {
        "date": "2031-02-03", "quick": False, "machine": "x86_64, 4 cores, Python 3.12.1",
        "indexing": {"pages": 47, "chunks": 512, "tokens": 51234, "batch_size": 32, "build_seconds": 6.125,
                     "raw_forward_seconds": 5.375, "artifact_bytes": 40_000_000, "reindex_seconds": 0.1875,
                     "reindex_embedded": 2},
        "http": {"raw_query_embedding_p50_ms": 6.25, "inprocess_search_p50_ms": 11.5, "search_requests": 200,
                 "search_p50_ms": 17.75, "search_p99_ms": 31.3, "concurrent_clients": 8,
                 "search_concurrent_p50_ms": 140.2, "search_concurrent_p99_ms": 310.9, "ask_requests": 100,
                 "ask_p50_ms": 98.6, "ask_p99_ms": 201.4},
        "mkdocs": {"with_plugin_seconds": 1.125, "plain_seconds": 0.8125, "runs": 3, "content_pages": 49,
                   "content_load_seconds": 0.0625},
        "scale": [{"chunks": 10_000, "index_type": "flat", "rss_mb": 612.5, "disk_bytes": 20_480_000, "requests": 150,
                   "search_p50_ms": 18.5, "search_p99_ms": 33.25, "build_seconds": 0.9}],
        "onnx": {"torch_index_seconds": 5.0, "onnx_int8_index_seconds": 3.875, "torch_query_p50_ms": 6.75,
                 "onnx_int8_query_p50_ms": 1.75, "recall@5_torch": 0.86, "recall@5_onnx_int8": 0.87,
                 "mrr@10_torch": 0.7512, "mrr@10_onnx_int8": 0.7499},
        "load": {"clients": 32, "duration_s": 60.0, "ask_share": 0.25, "errors": 0,
                 "search": {"requests": 870, "errors": 0, "p50_ms": 1050.5, "p99_ms": 1688.8},
                 "ask": {"requests": 390, "errors": 0, "p50_ms": 2400.1, "p99_ms": 3999.9}},
    }


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def unexplained_numbers(report: str, results: dict[str, Any]) -> list[str]:
    """Numbers in ``report`` that are neither a value of ``results`` nor a named threshold."""
    leaves = _leaves(results)
    for text in sorted((v for v in leaves if isinstance(v, str)), key=len, reverse=True):
        report = report.replace(text, " ")  # dates and the machine's name hold digits of their own
    known = [float(v) for v in leaves if isinstance(v, int | float) and not isinstance(v, bool)] + list(THRESHOLDS)
    out = []
    for number, percent in NUMBER.findall(report):
        value = float(number.replace(",", "")) / (100 if percent else 1)
        if not any(abs(value - k) <= 1e-9 * max(1.0, abs(k)) for k in known):
            out.append(number + percent)
    return out


def test_every_number_in_the_report_comes_from_the_results_or_a_named_threshold() -> None:
    results = derive(raw_results())
    report = render(results)
    assert len(NUMBER.findall(report)) > 60  # the check below sees the report's figures
    assert unexplained_numbers(report, results) == []
    assert unexplained_numbers(report + "\nabout 75 KB a section, 7.5 GB at 100k sections.", results) == ["75", "7.5"]


def test_the_committed_report_is_the_rendering_of_the_committed_results() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert derive(results) == results  # derived figures are up to date with the measurements
    assert (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8") == render(results)
    assert unexplained_numbers(render(results), results) == []


def test_onnx_verdict_follows_the_measured_speedup() -> None:
    slow = raw_results()
    report = render(derive(slow))
    assert "**not met**" in report and "gains little for indexing (1.29×)" in report
    assert f"{1.29}× faster" in report

    fast = copy.deepcopy(slow)
    fast["onnx"]["onnx_int8_index_seconds"] = 2.0  # 5.0 / 2.0 = 2.5×, past the 2× goal
    report = render(derive(fast))
    assert "**met**" in report and "gains little" not in report
    assert "pays off for serving" in report

    lossy = copy.deepcopy(fast)
    lossy["onnx"]["recall@5_onnx_int8"] = 0.84  # 0.02 recall@5 lost, more than the 0.01 allowed
    report = render(derive(lossy))
    assert "**not met**" in report and "quality drops" in report and "does not pay off" in report


def test_little_gain_threshold_decides_the_wording() -> None:
    results = raw_results()
    results["onnx"]["onnx_int8_index_seconds"] = results["onnx"]["torch_index_seconds"] / (LITTLE_GAIN_BELOW + 0.01)
    assert "gains little" not in render(derive(results))
    results["onnx"]["onnx_int8_index_seconds"] = results["onnx"]["torch_index_seconds"] / (LITTLE_GAIN_BELOW - 0.01)
    assert "gains little for indexing" in render(derive(results))
    assert ONNX_SPEEDUP_GOAL > LITTLE_GAIN_BELOW


def test_speed_phrases_follow_the_ratio() -> None:
    assert speed_phrase(1.29) == "1.29× faster"
    assert speed_phrase(1.02) == "1.02×, about as fast"
    assert speed_phrase(0.8) == "0.8× as fast (slower)"


def test_a_goal_miss_is_explained_with_this_runs_numbers() -> None:
    results = raw_results()
    report = render(derive(results))
    # 17.75 / 6.25 = 2.84: misses the 1.5 goal; the parts come from the in-process and HTTP timings.
    assert "| /v1/search p50 ÷ query embedding | 2.84 | ≤ 1.5 | no |" in report
    assert "the query embedding takes 6.25 ms, the rest of the ranking in-process (BM25, FAISS, fusion, re-ranking) " \
           "5.25 ms, and snippets, JSON and HTTP on loopback 6.25 ms" in report

    results["http"]["search_p50_ms"] = 9.0  # 9.0 / 6.25 = 1.44: meets the goal, nothing to explain
    report = render(derive(results))
    assert "| /v1/search p50 ÷ query embedding | 1.44 | ≤ 1.5 | yes |" in report
    assert "of a 9.0 ms search" not in report and "/v1/search p50 ÷ query embedding** (" not in report


def test_missing_measurements_leave_their_sentences_out() -> None:
    results = raw_results()
    del results["http"]["inprocess_search_p50_ms"], results["onnx"], results["scale"], results["load"]["ask_share"]
    report = render(derive(results))
    assert "a search (17.75 ms p50) is one query embedding (6.25 ms) plus 11.5 ms of work without the model" in report
    assert "ONNX" not in report and "## Scale" not in report and "bench-scale.png" not in report
    assert "32 concurrent clients for 60 s mixing search and ask" in report
    assert "{" not in report and "None" not in report
    assert unexplained_numbers(report, derive(results)) == []


def test_derive_recomputes_figures_from_the_stored_measurements_only() -> None:
    stored = raw_results()
    stored["onnx"]["meets_goal"] = True  # a verdict an older run stored; the report decides verdicts now
    results = derive(stored)
    assert results["indexing"]["ratio_build_vs_raw"] == round(5.375 / 6.125, 3)
    assert results["http"]["serving_overhead_ms"] == round(17.75 - 11.5, 2)
    assert results["load"]["search_share"] == 0.75
    assert "meets_goal" not in results["onnx"]
    assert derive(results) == results and "ratio_build_vs_raw" not in stored["indexing"]


def test_latency_is_split_into_parts_only_when_the_medians_nest() -> None:
    results = raw_results()
    results["http"]["inprocess_search_p50_ms"] = 19.0  # in-process slower than over HTTP: a noisy run
    derived = derive(results)
    assert "serving_overhead_ms" not in derived["http"] and "ranking_beyond_embedding_ms" not in derived["http"]
    assert "a search (17.75 ms p50) is one query embedding (6.25 ms) plus 11.5 ms of work" in render(derived)
