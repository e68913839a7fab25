"""The measurements of one benchmark run, stage by stage; each returns raw timings and counts.

Ratios and other figures derived from these are computed in ``benchmarks.figures``; every
call into the search service goes through ``benchmarks.subject``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import subject
from benchmarks.serving import Service, concurrent_requests, percentile_ms, timed_requests

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
GOLDEN = ROOT / "tests" / "eval" / "golden.jsonl"
EDITED_PAGE = Path("delivery") / "pilot-to-production.md"  # the page the re-index stage edits
EDITED_HEADING = "## Purpose\n"
STARTED = time.perf_counter()
T = TypeVar("T")


@dataclass(frozen=True)
class RunPlan:
    """How much each stage measures. The sizes keep a full run within the 10 minutes issue #7 allows
    on the 2-core benchmark machine; ``quick`` cuts them to about 3 minutes at the cost of noisier tails."""

    quick: bool = False
    sample_questions: int = 100  # queries timed one by one for bare embedding and in-process search
    search_requests: int = 200  # sequential /v1/search requests; a quarter per concurrent client, half as many asks
    concurrent_clients: int = 8  # issue #7 asks for the p99 with 8 concurrent clients
    mkdocs_runs: int = 3  # builds per variant; the median is kept
    scale_sizes: tuple[int, ...] = (10_000, 100_000)  # issue #7's synthetic corpus sizes
    scale_requests: int = 150
    load_clients: int = 32
    load_seconds: float = 60.0
    load_ask_share: float = 0.3  # share of asks in the load test's mix; the rest are searches

    @classmethod
    def for_run(cls, quick: bool) -> RunPlan:
        """The full plan, or the quick one."""
        if not quick:
            return cls()
        return cls(quick=True, search_requests=60, mkdocs_runs=2, scale_sizes=(10_000,), scale_requests=60,
                   load_seconds=20.0)


def say(message: str) -> None:
    """Progress on stderr, with the seconds since the run started."""
    print(f"[{time.perf_counter() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """(seconds the call took, its result)."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def time_each(action: Callable[[str], object], questions: list[str]) -> list[float]:
    """Seconds ``action`` took for each question, one at a time."""
    out = []
    for question in questions:
        started = time.perf_counter()
        action(question)
        out.append(time.perf_counter() - started)
    return out


def golden_questions() -> list[str]:
    """The questions of the labelled evaluation set, in file order."""
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def _edit_one_page(content: Path) -> None:
    page = content / EDITED_PAGE
    text = page.read_text(encoding="utf-8")
    if EDITED_HEADING not in text:
        raise RuntimeError(f"{EDITED_PAGE} has no {EDITED_HEADING.strip()!r} heading; choose another page to edit")
    page.write_text(text.replace(EDITED_HEADING, EDITED_HEADING + "\nEdited for the benchmark.\n", 1), encoding="utf-8")


def measure_indexing(embedder: Any, work: Path) -> dict[str, Any]:
    """Full index build against the bare model forward pass on the same texts; then a one-page re-index."""
    say("1/7 index build vs raw model forward on the same chunks")
    content, index_dir = work / "playbooks", work / "index"
    shutil.copytree(PLAYBOOKS, content)
    pages, texts = subject.page_texts(content)
    tokens = subject.count_tokens(embedder, texts)
    raw = subject.raw_forward_seconds(embedder, texts)
    build, full = timed(lambda: subject.build(content, index_dir, embedder))
    artifact = subject.artifact_bytes(index_dir)
    say(f"   {full.chunks} chunks, {tokens} tokens: build {build:.1f}s, raw forward {raw:.1f}s")
    say("2/7 re-index after editing one page vs full build")
    _edit_one_page(content)
    reindex, incremental = timed(lambda: subject.build(content, index_dir, embedder))
    say(f"   re-embedded {incremental.embedded} chunk(s) in {reindex:.2f}s")
    return {"pages": pages, "chunks": full.chunks, "tokens": tokens, "batch_size": subject.batch_size(embedder),
            "build_seconds": round(build, 3), "raw_forward_seconds": round(raw, 3), "artifact_bytes": artifact,
            "reindex_seconds": round(reindex, 3), "reindex_embedded": incremental.embedded}


def _in_process_ms(embedder: Any, index_dir: Path, sample: list[str]) -> tuple[float, float]:
    """p50 of a bare query embedding and of a whole in-process search, over the same questions."""
    embedding = time_each(lambda q: subject.embed_query(embedder, q), sample)
    retriever = subject.open_retriever(index_dir, embedder)
    time_each(lambda q: subject.search(retriever, q), sample[:10])  # warm-up: first searches page in the index files
    searches = time_each(lambda q: subject.search(retriever, q), sample)
    return percentile_ms(embedding, 50), percentile_ms(searches, 50)


def measure_http(embedder: Any, index_dir: Path, work: Path, plan: RunPlan) -> dict[str, Any]:
    """/v1/search over HTTP (one client, then several) and /v1/ask, against a bare query embedding."""
    say("3/7 /v1/search over HTTP vs raw single-query embedding; 4/7 /v1/ask vs /v1/search")
    questions = golden_questions()
    embedding_ms, in_process_ms = _in_process_ms(embedder, index_dir, questions[:plan.sample_questions])
    n = plan.search_requests
    with Service(index_dir, work) as service:
        timed_requests(service.url, questions, 20)  # warm-up
        search = timed_requests(service.url, questions, n)
        concurrent = concurrent_requests(service.url, questions, plan.concurrent_clients, n // 4)
        timed_requests(service.url, questions, 5, ask=True)  # warm-up
        asks = timed_requests(service.url, questions, n // 2, ask=True)
    result = {
        "raw_query_embedding_p50_ms": embedding_ms, "inprocess_search_p50_ms": in_process_ms,
        "search_requests": n, "search_p50_ms": percentile_ms(search, 50), "search_p99_ms": percentile_ms(search, 99),
        "concurrent_clients": plan.concurrent_clients, "search_concurrent_p50_ms": percentile_ms(concurrent, 50),
        "search_concurrent_p99_ms": percentile_ms(concurrent, 99),
        "ask_requests": n // 2, "ask_p50_ms": percentile_ms(asks, 50), "ask_p99_ms": percentile_ms(asks, 99),
    }
    say(f"   search p50 {result['search_p50_ms']}ms (in-process {in_process_ms}ms) vs embedding {embedding_ms}ms; "
        f"ask p50 {result['ask_p50_ms']}ms")
    return result


def _plain_mkdocs_project(work: Path) -> Path:
    """The same site without our plugin and theme overrides: docs and playbooks in one docs folder."""
    plain = work / "plain"
    (plain / "docs").mkdir(parents=True)
    shutil.copytree(ROOT / "docs", plain / "docs", dirs_exist_ok=True)
    shutil.copytree(PLAYBOOKS, plain / "docs", dirs_exist_ok=True)
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    start, end = config.index("  # Our plugin"), config.index("markdown_extensions:")
    plain_config = config[:start] + "\n" + config[end:]
    plain_config = plain_config.replace("  custom_dir: overrides\n", "").replace("strict: true", "strict: false")
    (plain / "mkdocs.yml").write_text(plain_config, encoding="utf-8")
    return plain


def _mkdocs_build_seconds(directory: Path, config_file: Path, site_dir: Path) -> float:
    command = [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config_file), "-d", str(site_dir)]
    seconds, _ = timed(lambda: subprocess.run(command, cwd=directory, check=True, capture_output=True))
    return seconds


def measure_mkdocs(work: Path, plan: RunPlan) -> dict[str, Any]:
    """`mkdocs build` with our plugin against plain mkdocs-material on the same pages (medians)."""
    say("5/7 mkdocs build with our plugin vs plain mkdocs-material on the same content")
    plain = _plain_mkdocs_project(work)
    site = work / "site-out"
    ours = statistics.median(_mkdocs_build_seconds(ROOT, ROOT / "mkdocs.yml", site) for _ in range(plan.mkdocs_runs))
    base = statistics.median(_mkdocs_build_seconds(plain, plain / "mkdocs.yml", site) for _ in range(plan.mkdocs_runs))
    load, pages = timed(lambda: subject.load_pages(PLAYBOOKS))
    say(f"   plugin {ours:.2f}s vs plain {base:.2f}s; loading {pages} pages {load:.2f}s")
    return {"with_plugin_seconds": round(ours, 3), "plain_seconds": round(base, 3), "runs": plan.mkdocs_runs,
            "content_pages": pages, "content_load_seconds": round(load, 3)}


def measure_scale(work: Path, plan: RunPlan) -> list[dict[str, Any]]:
    """Service memory and search latency on synthetic indexes of each size, flat and HNSW."""
    from benchmarks.synthetic import write_synthetic_index

    say("6/7 memory and search speed with synthetic corpora")
    questions = golden_questions()
    out = []
    for size in plan.scale_sizes:
        for kind in ("flat", "hnsw"):
            started = time.perf_counter()
            index_dir = write_synthetic_index(work / f"synthetic-{size}-{kind}", size, index_type=kind)
            made = time.perf_counter() - started
            with Service(index_dir, work) as service:
                timed_requests(service.url, questions, 10)  # warm-up
                latencies = timed_requests(service.url, questions, plan.scale_requests)
                rss = service.rss_mb()
            out.append({"chunks": size, "index_type": kind, "rss_mb": round(rss, 1),
                        "disk_bytes": subject.artifact_bytes(index_dir), "requests": plan.scale_requests,
                        "search_p50_ms": percentile_ms(latencies, 50), "search_p99_ms": percentile_ms(latencies, 99),
                        "build_seconds": round(made, 1)})
            say(f"   {size} chunks {kind}: RSS {rss:.0f} MB, search p50 {out[-1]['search_p50_ms']} ms")
    return out


def _backend_speed(backend: Any, texts: list[str], questions: list[str]) -> tuple[float, float]:
    """(seconds to embed ``texts`` in batches, p50 ms of one query embedding)."""
    subject.embed_documents(backend, texts[:32])  # warm-up
    index_seconds, _ = timed(lambda: subject.embed_documents(backend, texts))
    queries = time_each(lambda q: subject.embed_query(backend, q), questions)
    return index_seconds, percentile_ms(queries, 50)


def measure_onnx(embedder: Any, work: Path, plan: RunPlan) -> dict[str, Any]:
    """ONNX Runtime int8 against torch fp32: batch and query embedding speed, and retrieval quality."""
    say("7/7 ONNX Runtime int8 backend vs torch fp32")
    onnx = subject.onnx_embedder(subject.batch_size(embedder), work / "onnx")
    texts = subject.indexed_texts(work / "index")
    questions = golden_questions()[:plan.sample_questions]
    result: dict[str, Any] = {}
    for name, backend in (("torch", embedder), ("onnx_int8", onnx)):
        index_seconds, query_ms = _backend_speed(backend, texts, questions)
        result[f"{name}_index_seconds"] = round(index_seconds, 3)
        result[f"{name}_query_p50_ms"] = query_ms
    for name, backend in (("torch", embedder), ("onnx_int8", onnx)):
        quality = subject.hybrid_quality(PLAYBOOKS, work / f"eval-{name}", backend, GOLDEN)
        result[f"recall@5_{name}"], result[f"mrr@10_{name}"] = quality["recall@5"], quality["mrr@10"]
    say(f"   index {result['torch_index_seconds']}s vs {result['onnx_int8_index_seconds']}s, query "
        f"{result['torch_query_p50_ms']}ms vs {result['onnx_int8_query_p50_ms']}ms; "
        f"recall@5 {result['recall@5_torch']} vs {result['recall@5_onnx_int8']}")
    return result


def measure_load(index_dir: Path, work: Path, plan: RunPlan) -> dict[str, Any]:
    """Concurrent clients mixing searches and asks for a fixed time: requests, errors, latencies."""
    from benchmarks.load import run_load

    say(f"load test: {plan.load_clients} clients mixing search and ask for {plan.load_seconds:.0f}s")
    with Service(index_dir, work) as service:
        result = run_load(service.url, clients=plan.load_clients, duration=plan.load_seconds,
                          ask_share=plan.load_ask_share)
    say(f"   {result['search']['requests']} searches, {result['ask']['requests']} asks, {result['errors']} errors")
    return result
