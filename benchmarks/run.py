"""Benchmarks: how close the system runs to the model's own speed, as ratios measured in one run.

    python -m benchmarks.run [--quick] [--skip-load]

Writes benchmarks/results.json, docs/benchmarks.md and docs/img/bench-*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
GOLDEN = ROOT / "tests" / "eval" / "golden.jsonl"
RESULTS = ROOT / "benchmarks" / "results.json"
REPORT = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "img"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in GOLDEN.read_text().splitlines() if line.strip()]


class Service:
    """`kb serve --no-build` in a subprocess, for measurements over real HTTP."""

    def __init__(self, index_dir: Path, work: Path, **env) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "KB_INDEX_DIR": str(index_dir), "KB_SITE_DIR": str(work / "no-site"),
                    "KB_DATABASE_URL": f"sqlite:///{work}/bench-{self.port}.sqlite3", "KB_USER_HASH_SECRET": "bench",
                    "KB_RATE_LIMIT_PER_MINUTE": "100000000", **env}
        self.log = open(work / f"serve-{self.port}.log", "w")  # noqa: SIM115

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "search_service.cli", "serve", "--no-build",
                                      "--port", str(self.port)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"service did not start, see {self.log.name}")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def timed_requests(url: str, qs: list[str], n: int, *, ask: bool = False) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(n):
            q = qs[i % len(qs)]
            started = time.perf_counter()
            response = client.post("/v1/ask", json={"question": q}) if ask else client.get("/v1/search", params={"q": q, "k": 10})
            out.append(time.perf_counter() - started)
            response.raise_for_status()
    return out


def concurrent_requests(url: str, qs: list[str], clients: int, per_client: int) -> list[float]:
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            for j in range(per_client):
                started = time.perf_counter()
                response = await client.get("/v1/search", params={"q": qs[(i * per_client + j) % len(qs)], "k": 10})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(clients)))

    asyncio.run(main())
    return latencies


def p(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def bench_indexing(embedder, work: Path) -> dict:
    from search_service.content import load_content
    from search_service.indexing.build import build_index
    from search_service.indexing.chunking import chunk_page, page_profile

    say("1/7 index build vs raw model forward on the same chunks")
    content = work / "playbooks"
    shutil.copytree(PLAYBOOKS, content)
    texts = []
    for page in load_content(content).pages:
        chunks = chunk_page(page)
        texts += [c.embed_text() for c in [page_profile(page, chunks), *chunks]]
    tokenizer = embedder.model.tokenizer
    limit = embedder.model.max_seq_length
    tokens = sum(min(len(ids), limit) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"])
    embedder.model.encode(texts[:64], batch_size=embedder.batch_size)  # warm-up
    started = time.perf_counter()
    embedder.model.encode(sorted(texts, key=len), batch_size=embedder.batch_size, normalize_embeddings=True,
                          show_progress_bar=False)
    raw = time.perf_counter() - started
    started = time.perf_counter()
    full = build_index(content, work / "index", embedder)
    build = time.perf_counter() - started
    say(f"   {full.chunks} chunks, {tokens} tokens: build {build:.1f}s, raw forward {raw:.1f}s")

    say("2/7 re-index after editing one page vs full build")
    page = content / "delivery" / "pilot-to-production.md"
    page.write_text(page.read_text().replace("## Purpose\n", "## Purpose\n\nEdited for the benchmark.\n", 1))
    started = time.perf_counter()
    incremental = build_index(content, work / "index", embedder)
    reindex = time.perf_counter() - started
    say(f"   re-embedded {incremental.embedded} chunk(s) in {reindex:.2f}s")
    return {
        "chunks": full.chunks, "tokens": tokens, "batch_size": embedder.batch_size,
        "build_seconds": round(build, 3), "raw_forward_seconds": round(raw, 3),
        "build_tokens_per_s": round(tokens / build, 1), "raw_tokens_per_s": round(tokens / raw, 1),
        "ratio_build_vs_raw": round(raw / build, 3),
        "reindex_seconds": round(reindex, 3), "reindex_embedded": incremental.embedded,
        "ratio_reindex_vs_full": round(reindex / build, 4),
    }


def bench_http(embedder, index_dir: Path, work: Path, quick: bool) -> dict:
    say("3/7 /v1/search over HTTP vs raw single-query embedding; 4/7 /v1/ask vs /v1/search")
    qs = questions()
    raw = []
    for q in qs[:100]:
        started = time.perf_counter()
        embedder.embed_query(q)
        raw.append(time.perf_counter() - started)
    n = 60 if quick else 200
    with Service(index_dir, work) as service:
        timed_requests(service.url, qs, 20)  # warm-up
        search = timed_requests(service.url, qs, n)
        concurrent = concurrent_requests(service.url, qs, 8, n // 4)
        timed_requests(service.url, qs, 5, ask=True)
        asks = timed_requests(service.url, qs, n // 2, ask=True)
    result = {
        "raw_query_embedding_p50_ms": round(p(raw, 50), 2),
        "search_p50_ms": round(p(search, 50), 2), "search_p99_ms": round(p(search, 99), 2),
        "search_8_clients_p50_ms": round(p(concurrent, 50), 2), "search_8_clients_p99_ms": round(p(concurrent, 99), 2),
        "ask_p50_ms": round(p(asks, 50), 2), "ask_p99_ms": round(p(asks, 99), 2),
    }
    result["ratio_search_vs_embedding"] = round(result["search_p50_ms"] / result["raw_query_embedding_p50_ms"], 2)
    result["ratio_ask_vs_search"] = round(result["ask_p50_ms"] / result["search_p50_ms"], 2)
    say(f"   search p50 {result['search_p50_ms']}ms vs embedding {result['raw_query_embedding_p50_ms']}ms; "
        f"ask p50 {result['ask_p50_ms']}ms")
    return result


def bench_mkdocs(work: Path, runs: int) -> dict:
    say("5/7 mkdocs build with our plugin vs plain mkdocs-material on the same content")
    plain = work / "plain"
    (plain / "docs").mkdir(parents=True)
    shutil.copytree(ROOT / "docs", plain / "docs", dirs_exist_ok=True)
    shutil.copytree(PLAYBOOKS, plain / "docs", dirs_exist_ok=True)
    config = (ROOT / "mkdocs.yml").read_text()
    start, end = config.index("  # Our plugin"), config.index("markdown_extensions:")
    plain_config = config[:start] + "\n" + config[end:]
    plain_config = plain_config.replace("  custom_dir: overrides\n", "").replace("strict: true", "strict: false")
    (plain / "mkdocs.yml").write_text(plain_config)

    def build(directory: Path, config_file: Path) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config_file),
                        "-d", str(work / "site-out")], cwd=directory, check=True, capture_output=True)
        return time.perf_counter() - started

    ours = statistics.median(build(ROOT, ROOT / "mkdocs.yml") for _ in range(runs))
    base = statistics.median(build(plain, plain / "mkdocs.yml") for _ in range(runs))
    say(f"   plugin {ours:.2f}s vs plain {base:.2f}s")
    return {"with_plugin_seconds": round(ours, 3), "plain_seconds": round(base, 3),
            "ratio_plugin_vs_plain": round(ours / base, 3), "runs": runs}


def bench_scale(work: Path, quick: bool) -> list[dict]:
    from benchmarks.synthetic import write_synthetic_index

    say("6/7 memory and search speed with synthetic corpora")
    sizes = [10_000] if quick else [10_000, 100_000]
    qs = questions()
    out = []
    for size in sizes:
        for kind in ("flat", "hnsw"):
            started = time.perf_counter()
            index_dir = write_synthetic_index(work / f"synthetic-{size}-{kind}", size, index_type=kind)
            made = time.perf_counter() - started
            with Service(index_dir, work) as service:
                timed_requests(service.url, qs, 10)
                latencies = timed_requests(service.url, qs, 60 if quick else 150)
                rss = service.rss_mb()
            out.append({"chunks": size, "index_type": kind, "rss_mb": round(rss, 1),
                        "search_p50_ms": round(p(latencies, 50), 2), "search_p99_ms": round(p(latencies, 99), 2),
                        "build_seconds": round(made, 1)})
            say(f"   {size} chunks {kind}: RSS {rss:.0f} MB, search p50 {out[-1]['search_p50_ms']} ms")
    return out


def bench_onnx(embedder, work: Path) -> dict:
    from search_service.evaluation import evaluate_retrieval, load_questions
    from search_service.indexing.build import build_index, load_index
    from search_service.indexing.embedding import OnnxInt8Embedder
    from search_service.ranking.retriever import HybridRetriever

    say("7/7 ONNX Runtime int8 backend vs torch fp32")
    onnx = OnnxInt8Embedder("", batch_size=embedder.batch_size, cache_dir=work / "onnx")
    texts = [c.embed_text() for c in load_index(work / "index").chunks]
    timings = {}
    for name, backend in (("torch", embedder), ("onnx_int8", onnx)):
        backend.embed_documents(texts[:32])
        started = time.perf_counter()
        backend.embed_documents(texts)
        timings[f"{name}_index_seconds"] = round(time.perf_counter() - started, 3)
        q = []
        for question in questions()[:100]:
            t = time.perf_counter()
            backend.embed_query(question)
            q.append(time.perf_counter() - t)
        timings[f"{name}_query_p50_ms"] = round(p(q, 50), 2)
    quality = {}
    golden = load_questions(GOLDEN)
    for name, backend in (("torch", embedder), ("onnx_int8", onnx)):
        directory = work / f"eval-{name}"
        build_index(PLAYBOOKS, directory, backend)
        report = evaluate_retrieval({"hybrid": HybridRetriever(load_index(directory), backend)}, golden)
        quality[name] = report.metrics["hybrid"].to_json()
    result = {
        **timings,
        "speedup_index": round(timings["torch_index_seconds"] / timings["onnx_int8_index_seconds"], 2),
        "speedup_query": round(timings["torch_query_p50_ms"] / timings["onnx_int8_query_p50_ms"], 2),
        "recall@5_torch": quality["torch"]["recall@5"], "recall@5_onnx_int8": quality["onnx_int8"]["recall@5"],
        "mrr@10_torch": quality["torch"]["mrr@10"], "mrr@10_onnx_int8": quality["onnx_int8"]["mrr@10"],
    }
    result["recall@5_change"] = round(result["recall@5_onnx_int8"] - result["recall@5_torch"], 4)
    result["mrr@10_change"] = round(result["mrr@10_onnx_int8"] - result["mrr@10_torch"], 4)
    result["meets_goal"] = bool(min(result["speedup_index"], result["speedup_query"]) >= 2 and result["recall@5_change"] >= -0.01)
    say(f"   speed-up index {result['speedup_index']}x, query {result['speedup_query']}x; "
        f"recall@5 {result['recall@5_change']:+.3f}, MRR@10 {result['mrr@10_change']:+.3f}")
    return result


def bench_load(index_dir: Path, work: Path, duration: float) -> dict:
    from benchmarks.load import run_load

    say(f"load test: 32 clients mixing search and ask for {duration:.0f}s")
    with Service(index_dir, work) as service:
        result = run_load(service.url, clients=32, duration=duration)
    say(f"   {result['search']['requests']} searches, {result['ask']['requests']} asks, {result['errors']} errors")
    return result


# Why a ratio can miss its goal, shown in the report only when it does.
LIMITS = {
    "ratio_search_vs_embedding": "a search is one query embedding plus fixed work that does not shrink with the "
        "model: HTTP and JSON (about 2 ms on loopback), two BM25 scorings and the FAISS search (about 2 ms), and "
        "snippets for every returned section, and the late-interaction re-ranking of the top 30 pages "
        "(token-vector products, about 3 ms in-process; `KB_RERANK_DEPTH=0` removes it at a cost of 0.05 "
        "recall@1). With a faster embedding (ONNX int8, 1.8 ms) the ratio grows although searches get faster.",
    "ratio_plugin_vs_plain": "the plugin's cost is mostly fixed: importing the content schema (pydantic, about "
        "0.1 s) and rendering the generated catalog pages, which a plain build does not have. It matters less as "
        "the portal grows.",
    "ratio_reindex_vs_full": "a re-index still rebuilds both BM25 indexes and rewrites the artifact; on a 49-page "
        "portal that fixed part is a visible share of a 5-second build.",
    "ratio_build_vs_raw": "parsing, chunking, BM25 and writing the artifact add to the model's forward pass.",
}
MISSED = {"ratio_build_vs_raw": lambda v: v < 0.9, "ratio_reindex_vs_full": lambda v: v > 0.02,
          "ratio_search_vs_embedding": lambda v: v > 1.5, "ratio_plugin_vs_plain": lambda v: v > 1.15}

GOALS = {
    "index build ÷ raw forward (throughput)": ("indexing", "ratio_build_vs_raw", "≥ 0.9"),
    "re-index one page ÷ full build (time)": ("indexing", "ratio_reindex_vs_full", "≤ 0.02"),
    "/v1/search p50 ÷ query embedding": ("http", "ratio_search_vs_embedding", "≤ 1.5"),
    "/v1/ask p50 ÷ /v1/search p50": ("http", "ratio_ask_vs_search", "—"),
    "mkdocs build with plugin ÷ plain": ("mkdocs", "ratio_plugin_vs_plain", "≤ 1.15"),
}


def write_report(results: dict) -> None:
    lines = ["---", "title: Benchmarks", "---", "", "# Benchmarks", "",
             f"Measured by `scripts/bench` on {results['machine']} ({results['date']}). Every figure is a ratio "
             "of two timings taken in the same run, so it travels between machines better than seconds do.", "",
             "| Measure | Ratio | Goal |", "| --- | --- | --- |"]
    for label, (group, key, goal) in GOALS.items():
        lines.append(f"| {label} | {results[group][key]} | {goal} |")
    misses = [(label, key) for label, (group, key, _) in GOALS.items() if key in MISSED and MISSED[key](results[group][key])]
    if misses:
        lines += ["", "What limits the ratios that miss their goal:", ""]
        lines += [f"- **{label}**: {LIMITS[key]}" for label, key in misses]
    h, i = results["http"], results["indexing"]
    lines += ["", "| Detail | Value |", "| --- | --- |",
              f"| chunks / tokens indexed | {i['chunks']} / {i['tokens']} |",
              f"| index build / raw forward | {i['build_seconds']} s / {i['raw_forward_seconds']} s |",
              f"| re-index after one edit | {i['reindex_seconds']} s, {i['reindex_embedded']} chunk(s) embedded |",
              f"| /v1/search p50 / p99 (1 client) | {h['search_p50_ms']} / {h['search_p99_ms']} ms |",
              f"| /v1/search p50 / p99 (8 clients) | {h['search_8_clients_p50_ms']} / {h['search_8_clients_p99_ms']} ms |",
              f"| /v1/ask p50 / p99 | {h['ask_p50_ms']} / {h['ask_p99_ms']} ms |",
              f"| raw query embedding p50 | {h['raw_query_embedding_p50_ms']} ms |", "",
              "## Scale (synthetic corpora)", "",
              ("Synthetic indexes carry no word-piece vectors, so these searches skip the re-ranking stage. Its cost "
               "does not grow with the corpus (it reads the 3 best sections of the 30 best pages from memory-mapped "
               "per-page files), but the files do: about 75 KB a section, 7.5 GB at 100k sections."), "",
              "| Chunks | Index | Service RSS (MB) | search p50 (ms) | p99 (ms) |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['chunks']:,} | {r['index_type']} | {r['rss_mb']} | {r['search_p50_ms']} | {r['search_p99_ms']} |"
              for r in results["scale"]]
    o = results["onnx"]
    lines += ["", "## ONNX Runtime int8 backend", "", "| | torch fp32 | ONNX int8 | change |", "| --- | --- | --- | --- |",
              f"| indexing (s) | {o['torch_index_seconds']} | {o['onnx_int8_index_seconds']} | {o['speedup_index']}× faster |",
              f"| query p50 (ms) | {o['torch_query_p50_ms']} | {o['onnx_int8_query_p50_ms']} | {o['speedup_query']}× faster |",
              f"| recall@5 | {o['recall@5_torch']} | {o['recall@5_onnx_int8']} | {o['recall@5_change']:+} |",
              f"| MRR@10 | {o['mrr@10_torch']} | {o['mrr@10_onnx_int8']} | {o['mrr@10_change']:+} |", "",
              f"Goal (≥ 2× faster for indexing and queries, ≤ 0.01 recall@5 lost): {'met' if o['meets_goal'] else 'not met'}"
              f" (queries {o['speedup_query']}×, indexing {o['speedup_index']}×). Batched indexing on PyTorch already "
              "uses the CPU's vector units well, so int8 gains little there; a single short query gains the most. "
              "`KB_BACKEND=onnx-int8` is offered for serving, where query latency matters.", ""]
    if "load" in results:
        l = results["load"]
        lines += ["## Load test", "", f"{l['clients']} concurrent clients for {l['duration_s']:.0f} s, 70% search / 30% ask, "
                  f"on loopback: **{l['errors']} errors**.", "", "| Endpoint | requests | p50 (ms) | p99 (ms) |",
                  "| --- | --- | --- | --- |",
                  f"| /v1/search | {l['search']['requests']} | {l['search']['p50_ms']} | {l['search']['p99_ms']} |",
                  f"| /v1/ask | {l['ask']['requests']} | {l['ask']['p50_ms']} | {l['ask']['p99_ms']} |", ""]
    lines += ["![Ratios against their goals](img/bench-ratios.png)", "", "![Search latency and memory by corpus size](img/bench-scale.png)", ""]
    REPORT.write_text("\n".join(lines))


def write_plots(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(parents=True, exist_ok=True)
    labels = [label for label, (_, _, goal) in GOALS.items()]
    values = [results[g][k] for g, k, _ in GOALS.values()]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(labels, values, color="#3f51b5")
    for label, value in zip(labels, values, strict=True):
        ax.text(value, label, f" {value}", va="center")
    ax.set_xlabel("ratio (same-run timings)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-ratios.png", dpi=110)
    plt.close(fig)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for kind, color in (("flat", "#3f51b5"), ("hnsw", "#ef6c00")):
        rows = [r for r in results["scale"] if r["index_type"] == kind]
        left.plot([r["chunks"] for r in rows], [r["search_p50_ms"] for r in rows], "o-", color=color, label=kind)
        right.plot([r["chunks"] for r in rows], [r["rss_mb"] for r in rows], "o-", color=color, label=kind)
    left.set(xscale="log", xlabel="chunks", ylabel="search p50 (ms)")
    right.set(xscale="log", xlabel="chunks", ylabel="service RSS (MB)")
    left.legend()
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-scale.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller samples (about 3 minutes)")
    parser.add_argument("--skip-load", action="store_true", help="skip the 60-second load test")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report and plots from results.json")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads(RESULTS.read_text())
        write_report(results)
        write_plots(results)
        return
    from search_service.indexing.embedding import Embedder

    embedder = Embedder("")
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        work = Path(tmp)
        results = {"date": dt.date.today().isoformat(),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
        results["indexing"] = bench_indexing(embedder, work)
        results["http"] = bench_http(embedder, work / "index", work, args.quick)
        results["mkdocs"] = bench_mkdocs(work, 2 if args.quick else 3)
        results["scale"] = bench_scale(work, args.quick)
        results["onnx"] = bench_onnx(embedder, work)
        if not args.skip_load:
            results["load"] = bench_load(work / "index", work, 20 if args.quick else 60)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)
    write_plots(results)
    say(f"wrote {RESULTS.relative_to(ROOT)}, {REPORT.relative_to(ROOT)} and plots in {IMAGES.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
