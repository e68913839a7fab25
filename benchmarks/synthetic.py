"""Synthetic corpora for scale benchmarks: N chunks written as a real index folder.

Vectors are random unit vectors around a few hundred topic centres (so nearest neighbours are
meaningful), texts are drawn from a vocabulary of CoE words; embedding 100k chunks with the
real model would take most of an hour here, and the service's memory and search speed
depend on the index size, not on where the vectors came from.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.subject import CHUNKER_VERSION, FORMAT_VERSION, PACKAGED_MODEL_ID, KeywordIndex, make_faiss

WORDS = [
    "pilot", "production", "model", "data", "governance", "risk", "review", "budget", "funding", "platform",
    "api", "adoption", "training", "monitoring", "drift", "incident", "registry", "deployment", "pipeline",
    "template", "business", "case", "owner", "sponsor", "vendor", "contract", "metric", "kpi", "scale",
    "roadmap", "hub", "spoke", "champion", "change", "process", "document", "extraction", "review",
    "checklist", "security", "compliance", "privacy", "retention", "cost", "value", "department", "team",
    "portfolio", "intake",
]


def write_synthetic_index(directory: Path, n_chunks: int, *, index_type: str = "flat", dimension: int = 384,
                          seed: int = 7, chunks_per_page: int = 10) -> Path:
    """Write an index of ``n_chunks`` synthetic chunks to ``directory`` (loadable by the service)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, dimension)).astype(np.float32)
    topics = rng.integers(0, len(centres), size=n_chunks)
    vectors = centres[topics] + 0.8 * rng.normal(size=(n_chunks, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # A Zipf-distributed vocabulary of 20k words (the CoE words are the most frequent), as in real
    # text: a few words appear everywhere, most in a handful of chunks.
    words = np.array(WORDS + [f"term{i}" for i in range(20_000 - len(WORDS))])
    ranks = np.minimum(rng.zipf(1.2, size=(n_chunks, 60)) - 1, len(words) - 1)
    texts = [" ".join(words[row]) for row in ranks]
    n_pages = max(1, n_chunks // chunks_per_page)
    build = directory / "builds" / "synthetic"
    build.mkdir(parents=True, exist_ok=True)
    faiss.write_index(make_faiss(vectors, index_type), str(build / "dense.faiss"))
    KeywordIndex.build(texts).save(build / "bm25")
    pages: dict[str, dict[str, Any]] = {}
    page_texts = []
    with open(build / "chunks.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            number, section = divmod(i, chunks_per_page)
            page = f"area-{number % 50}/page-{number}.md"
            handle.write(json.dumps({"page_path": page, "title": f"Synthetic page {number}",
                                     "heading_path": [f"Section {section}"], "anchor": f"section-{section}",
                                     "text": text, "ordinal": section, "part": 0, "kind": "text",
                                     "blocks": [text]}) + "\n")
    for p in range(n_pages):
        page = f"area-{p % 50}/page-{p}.md"
        pages[page] = {"title": f"Synthetic page {p}", "type": "guide", "owner": "@ai-coe/delivery",
                       "last_reviewed": "2026-10-01", "audience": ["practitioners"]}
        page_texts.append(" ".join(texts[p * chunks_per_page:(p + 1) * chunks_per_page]))
    KeywordIndex.build(page_texts).save(build / "bm25-pages")
    (build / "pages.json").write_text(json.dumps(pages))
    (build / "manifest.json").write_text(json.dumps({
        "format": FORMAT_VERSION, "model": PACKAGED_MODEL_ID, "dimension": dimension,
        "chunker_version": CHUNKER_VERSION, "index_type": index_type, "content_hash": f"synthetic-{n_chunks}",
        "pages": n_pages, "chunks": n_chunks, "embedded": 0, "cached": 0,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "build_seconds": 0}))
    link = directory / "current"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(Path("builds") / "synthetic", link)
    return directory
