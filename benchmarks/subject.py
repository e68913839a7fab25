"""The system under test: every call the benchmarks make into ``search_service``, in one place.

The indexing, ranking and evaluation modules change shape from time to time; when they do,
only these small functions need adapting, and the measurements in ``benchmarks.measure`` stay
as they are. Embedders and retrievers are handed around as opaque objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The on-disk index format, for benchmarks.synthetic (which writes indexes without the model).
from search_service.indexing.build import FORMAT_VERSION
from search_service.indexing.build import _make_faiss as make_faiss
from search_service.indexing.chunking import CHUNKER_VERSION
from search_service.indexing.embedding import PACKAGED_MODEL_ID
from search_service.indexing.keyword import KeywordIndex

__all__ = [
    "CHUNKER_VERSION", "FORMAT_VERSION", "PACKAGED_MODEL_ID", "BuildCounts", "KeywordIndex", "artifact_bytes",
    "batch_size", "build", "count_tokens", "embed_documents", "embed_query", "hybrid_quality", "indexed_texts",
    "load_embedder", "load_pages", "make_faiss", "onnx_embedder", "open_retriever", "page_texts", "raw_forward_seconds",
    "search",
]


@dataclass(frozen=True)
class BuildCounts:
    """What an index build did: chunks in the index, and how many of them it embedded."""

    chunks: int
    embedded: int


def load_embedder() -> Any:
    """The packaged model on PyTorch (fp32), as ``kb index`` and ``kb serve`` use it by default."""
    from search_service.indexing.embedding import Embedder

    return Embedder("")


def onnx_embedder(batch_size: int, cache_dir: Path) -> Any:
    """The packaged model on ONNX Runtime with int8 weights (``KB_BACKEND=onnx-int8``)."""
    from search_service.indexing.embedding import OnnxInt8Embedder

    return OnnxInt8Embedder("", batch_size=batch_size, cache_dir=cache_dir)


def batch_size(embedder: Any) -> int:
    """The batch size the embedder uses for documents."""
    return int(embedder.batch_size)


def embed_query(embedder: Any, question: str) -> None:
    """Embed one query (the result is not needed, only the time it takes)."""
    embedder.embed_query(question)


def embed_documents(embedder: Any, texts: list[str]) -> None:
    """Embed documents in the embedder's batches, as an index build does."""
    embedder.embed_documents(texts)


def page_texts(content_dir: Path) -> tuple[int, list[str]]:
    """(pages loaded, the texts the index build embeds for them: one profile per page plus its chunks)."""
    from search_service.content import load_content
    from search_service.indexing.chunking import chunk_page, page_profile

    pages = load_content(content_dir).pages
    texts: list[str] = []
    for page in pages:
        chunks = chunk_page(page)
        texts += [c.embed_text() for c in [page_profile(page, chunks), *chunks]]
    return len(pages), texts


def load_pages(content_dir: Path) -> int:
    """Load and validate every page's front matter, as the portal plugin does on each build; returns the count."""
    from search_service.content import load_content

    return len(load_content(content_dir).pages)


def count_tokens(embedder: Any, texts: list[str]) -> int:
    """Word pieces the model reads for ``texts`` (each cut at the model's maximum length)."""
    limit = embedder.model.max_seq_length
    return sum(min(len(ids), limit) for ids in embedder.model.tokenizer(texts, add_special_tokens=True)["input_ids"])


def raw_forward_seconds(embedder: Any, texts: list[str]) -> float:
    """Seconds for the bare model forward pass over ``texts`` (shortest first, as the build sorts them)."""
    embedder.model.encode(texts[:64], batch_size=embedder.batch_size)  # warm-up
    started = time.perf_counter()
    embedder.model.encode(sorted(texts, key=len), batch_size=embedder.batch_size, normalize_embeddings=True,
                          show_progress_bar=False)
    return time.perf_counter() - started


def build(content_dir: Path, index_dir: Path, embedder: Any) -> BuildCounts:
    """``kb index``: build (incrementally) the index of ``content_dir`` into ``index_dir``."""
    from search_service.indexing.build import build_index

    report = build_index(content_dir, index_dir, embedder)
    return BuildCounts(chunks=report.chunks, embedded=report.embedded)


def artifact_bytes(index_dir: Path) -> int:
    """Bytes on disk of the live build (``<index_dir>/current``), word-piece vectors included."""
    build_dir = (index_dir / "current").resolve()
    return sum(path.stat().st_size for path in build_dir.rglob("*") if path.is_file())


def indexed_texts(index_dir: Path) -> list[str]:
    """The embedded text of every chunk in the live index."""
    from search_service.indexing.build import load_index

    return [c.embed_text() for c in load_index(index_dir).chunks]


def open_retriever(index_dir: Path, embedder: Any) -> Any:
    """The retriever ``kb serve`` opens on ``index_dir`` (tuning from the index, settings from ``KB_``)."""
    from search_service.indexing.build import load_index
    from search_service.ranking.retriever import HybridRetriever
    from search_service.settings import Settings

    return HybridRetriever.from_settings(load_index(index_dir), embedder, Settings())


def search(retriever: Any, question: str) -> None:
    """One ranked search for an anonymous reader, top 10, as /v1/search runs it (without snippets and JSON)."""
    retriever.search(question, k=10)


def hybrid_quality(content_dir: Path, index_dir: Path, embedder: Any, questions_file: Path) -> dict[str, float]:
    """recall@5 and MRR@10 of the hybrid ranking (default parameters) on a labelled question file."""
    from search_service.evaluation import evaluate_retrieval, load_questions
    from search_service.indexing.build import load_index
    from search_service.ranking.retriever import HybridRetriever

    build(content_dir, index_dir, embedder)
    retriever = HybridRetriever(load_index(index_dir), embedder)
    hybrid = evaluate_retrieval({"hybrid": retriever}, load_questions(questions_file)).metrics["hybrid"].to_json()
    return {"recall@5": hybrid["recall@5"], "mrr@10": hybrid["mrr@10"]}
