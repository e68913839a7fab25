"""The ranking signals: dense similarity of sections (FAISS), BM25 of sections, BM25 of whole pages.

Each signal scores only what the caller may see: the section signals take the visible chunk
indices, the page signal the visible pages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from search_service.indexing.keyword import KeywordIndex

logger = logging.getLogger(__name__)

# FAISS's HNSW search breadth for a query: the value the index loader sets, raised to k when more are wanted.
HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class DenseSignal:
    """Cosine similarity of the query vector to each visible section, from the FAISS index."""

    index: faiss.Index

    def scores(self, query_vector: np.ndarray, visible: np.ndarray, k: int) -> dict[int, float]:
        """The ``k`` most similar visible sections, by chunk index, most similar first."""
        if visible.size == 0:
            return {}
        k = min(k, int(visible.size))
        hnsw = isinstance(self.index, faiss.IndexHNSW)
        ef_search = max(HNSW_EF_SEARCH, k)
        # faiss's bundled type stubs lack the HNSW search parameters and the selector keyword.
        if visible.size == self.index.ntotal:
            # Everything is visible: no selector needed (the common case, and the fastest).
            params = faiss.SearchParametersHNSW(efSearch=ef_search) if hnsw else None  # type: ignore[attr-defined]
        else:
            selector = faiss.IDSelectorBatch(visible)
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=ef_search) if hnsw  # type: ignore[attr-defined]
                      else faiss.SearchParameters(sel=selector))  # type: ignore[call-arg]
        scores, ids = self.index.search(query_vector.reshape(1, -1), k, params=params)
        return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}


@dataclass(frozen=True)
class SectionKeywordSignal:
    """BM25 score of each visible section for the query's words."""

    keyword: KeywordIndex
    # The chunk index of each row of ``keyword`` (sorted), when it covers only some chunks; None: row i is chunk i.
    chunk_ids: np.ndarray | None = None

    def scores(self, query: str, visible: np.ndarray, k: int) -> dict[int, float]:
        """The ``k`` best-scoring visible sections with a positive score, by chunk index."""
        if visible.size == 0:
            return {}
        scores = self.keyword.scores(query)
        everything = visible.size == scores.size
        rows = visible if self.chunk_ids is None or everything else np.searchsorted(self.chunk_ids, visible)
        sub = scores if everything else scores[rows]
        # Partial selection: linear, not a full sort of every chunk.
        top = np.argpartition(-sub, k - 1)[:k] if sub.size > k else np.arange(sub.size)
        ids = visible[top]  # visible is sorted, so with everything visible it lists the rows' chunks in order
        return {int(i): float(v) for i, v in zip(ids, sub[top], strict=True) if v > 0}


@dataclass(frozen=True)
class PageKeywordSignal:
    """BM25 score of each visible page as a whole, for words spread over its sections."""

    keyword: KeywordIndex
    page_paths: Sequence[str]  # the page of each row of the page index

    def scores(self, query: str, visible_pages: frozenset[str]) -> dict[str, float]:
        """The visible pages with a positive score, by path."""
        scores = self.keyword.scores(query)
        return {path: float(scores[row]) for row, path in enumerate(self.page_paths)
                if path in visible_pages and row < scores.size and scores[row] > 0}


@dataclass(frozen=True)
class SignalScores:
    """One query's scores from each signal a retriever uses; None for a signal it does not use."""

    dense: dict[int, float] | None = None
    section_keywords: dict[int, float] | None = None
    page_keywords: dict[str, float] | None = None

    def candidates(self) -> list[int]:
        """The chunk indices any section signal returned, in index order."""
        return sorted(set(self.dense or {}) | set(self.section_keywords or {}))

    @property
    def dense_max(self) -> float:
        """The best dense similarity among the visible sections (0 when the signal is not used)."""
        return max((self.dense or {}).values(), default=0.0)
