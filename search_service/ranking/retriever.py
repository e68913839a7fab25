"""Hybrid retrieval: pages ranked by fusing dense (FAISS) and keyword (BM25) signals, then re-ranked.

A :class:`HybridRetriever` is assembled from parts (:class:`RankingParts`): the signals it uses, a
fusion and an optional re-ranker. The default assembly is the hybrid the service runs;
evaluation assembles its comparison retrievers from the same parts.

Filters and access control are applied before ranking: chunks a caller may not see are
excluded from the FAISS search itself (an ID selector) and from the BM25 candidates.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from search_service.content import PageMeta
from search_service.indexing.build import SearchIndex
from search_service.indexing.chunking import Chunk
from search_service.indexing.embedding import Embedder, QueryEncoding
from search_service.indexing.keyword import tokenize
from search_service.ranking.access import KeywordView, KeywordViews
from search_service.ranking.config import DEFAULT_RANKING, RankingConfig
from search_service.ranking.filters import ANONYMOUS, Filters, Viewer, Visibility, Visible
from search_service.ranking.fusion import Fusion, WeightedFusion
from search_service.ranking.page_rules import apply_boosts, author_boosts, demote_deprecated
from search_service.ranking.rerank import LateInteractionReranker
from search_service.ranking.sections import PageSections, RankedSections, SectionMatch
from search_service.ranking.signals import DenseSignal, PageKeywordSignal, SectionKeywordSignal, SignalScores
from search_service.ranking.snippets import chunk_url, make_snippet
from search_service.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "ANONYMOUS",
    "Filters",
    "Hit",
    "HybridRetriever",
    "QueryEncoder",
    "RankingParts",
    "SearchResult",
    "SectionMatch",
    "Viewer",
    "chunk_url",
    "make_snippet",
]


@dataclass
class Hit:
    """One page in the results, with its best-matching sections."""

    page_path: str
    meta: PageMeta
    score: float
    sections: list[SectionMatch]
    superseded_by: str | None = None
    promoted_from: str | None = None  # set when this page replaces a deprecated page that matched

    @property
    def best(self) -> Chunk:
        """The page's best-matching section."""
        return self.sections[0].chunk


@dataclass
class SearchResult:
    """The ranked pages for a query, and what the answerer reuses of the query's analysis."""

    query: str
    hits: list[Hit]
    terms: list[str] = field(default_factory=list)
    dense_max: float = 0.0  # best raw cosine similarity among the chunks the viewer may see
    coverage: float = 0.0  # share of the query's words that occur anywhere in the pages the viewer may see
    query_vector: np.ndarray | None = None  # the question's embedding, reused by the answerer


class QueryEncoder(Protocol):
    """What a retriever needs of an embedder to encode a query (an :class:`Embedder` is one)."""

    def embed_query(self, text: str) -> np.ndarray:
        """The query's sentence vector."""
        ...

    def encode_query(self, text: str) -> QueryEncoding:
        """The query's sentence vector and word-piece vectors, from one forward pass."""
        ...


@dataclass(frozen=True)
class RankingParts:
    """The strategy objects a retriever is assembled from; a signal left out is not computed."""

    fusion: Fusion
    dense: DenseSignal | None = None
    section_keywords: SectionKeywordSignal | None = None
    page_keywords: PageKeywordSignal | None = None
    reranker: LateInteractionReranker | None = None

    @classmethod
    def hybrid(cls, index: SearchIndex, config: RankingConfig, sections: PageSections) -> RankingParts:
        """The service's assembly: all three signals, weighted fusion, and late-interaction
        re-ranking when the index has word-piece vectors and the configured depth is not 0."""
        tokens = index.tokens if config.rerank_depth > 0 else None
        return cls(
            fusion=WeightedFusion.from_config(config, sections.page_of),
            dense=DenseSignal(index.dense),
            section_keywords=SectionKeywordSignal(index.keyword),
            page_keywords=PageKeywordSignal(index.page_keyword, list(index.pages)),
            reranker=LateInteractionReranker.from_config(tokens, sections, config) if tokens is not None else None,
        )


class HybridRetriever:
    """Ranks the pages of a :class:`SearchIndex` for a question."""

    @classmethod
    def from_settings(cls, index: SearchIndex, embedder: Embedder, settings: Settings) -> HybridRetriever:
        """The service's retriever, configured by ``settings`` and the corpus's tuning stored in the
        index (see :meth:`Settings.ranking_config`)."""
        config = settings.ranking_config(index.manifest.get("tuning"))
        logger.debug("ranking %s with %s", index.path, config)
        return cls(index, embedder, config)

    def __init__(self, index: SearchIndex, embedder: Embedder, config: RankingConfig | None = None, *,
                 parts: RankingParts | None = None, queries: QueryEncoder | None = None) -> None:
        """Assemble a retriever over a loaded index.

        Args:
            index: the loaded index.
            embedder: the model the index was built with.
            config: weights and depths; the defaults when None.
            parts: the assembly, built with the same ``config``; the hybrid (:meth:`RankingParts.hybrid`) when None.
            queries: encodes queries; the embedder when None (tuning passes one that caches).
        """
        self.index = index
        self.embedder = embedder
        self.config = config if config is not None else DEFAULT_RANKING
        self.sections = PageSections(index.chunks)
        self.visibility = Visibility(index.pages, self.sections)
        self.keyword_views = KeywordViews(index, self.sections)
        self.parts = parts or RankingParts.hybrid(index, self.config, self.sections)
        self.queries: QueryEncoder = queries or embedder
        self._author_boosts = author_boosts(index.pages)

    def with_parts(self, parts: RankingParts) -> HybridRetriever:
        """A retriever over the same index, embedder and configuration, assembled from other parts."""
        other = copy.copy(self)
        other.parts = parts
        return other

    def page_chunks(self, path: str) -> list[Chunk]:
        """The chunks of one page in reading order (the page profile excluded)."""
        return self.sections.page_chunks(path)

    def search(self, query: str, *, k: int = 10, filters: Filters | None = None, viewer: Viewer = ANONYMOUS,
               boost_pages: dict[str, float] | None = None) -> SearchResult:
        """Top ``k`` pages for ``query`` with their best sections.

        Args:
            query: the question, in the user's words.
            k: number of pages to return.
            filters: type / tag / audience restrictions (applied before ranking).
            viewer: whose access rights apply (restricted pages are invisible to others).
            boost_pages: optional multiplicative boosts by page path (e.g. "ask about this page").
        """
        visible = self.visibility.visible(filters or Filters(), viewer)
        # Keyword statistics and vocabulary of the pages the viewer may see, never of the others.
        keywords = self.keyword_views.for_pages(self.visibility.accessible(viewer))
        encoding, vector = self._encode(query)
        terms = tokenize(query)
        coverage = sum(t in keywords.vocab for t in terms) / len(terms) if terms else 0.0
        scores = self._signal_scores(query, vector, visible, keywords)
        candidates = scores.candidates()
        if not candidates and not scores.page_keywords:
            return SearchResult(query=query, hits=[], terms=terms, coverage=coverage)
        fusion = self.parts.fusion
        ranked = self.sections.rank(candidates, fusion.section_scores(scores, candidates).tolist())
        page_scores = fusion.page_scores(scores, ranked)
        reranker = self.parts.reranker
        if reranker is not None and encoding is not None:
            tokens = self.keyword_views.tokens(keywords)
            if keywords is not self.keyword_views.full and tokens is not None:
                reranker = dataclasses.replace(reranker, tokens=tokens)  # the viewer's word-piece weights
            page_scores = reranker.rerank(encoding, page_scores, ranked)
        # Authors' front matter `search: {boost: N}` first, then the caller's boosts.
        page_scores = apply_boosts(page_scores, self._author_boosts, boost_pages or {})
        page_scores, promoted = demote_deprecated(page_scores, self.index.pages, visible.pages,
                                                  self.config.deprecated_factor)
        return SearchResult(query=query, hits=self._hits(page_scores, ranked, promoted, k), terms=terms,
                            dense_max=scores.dense_max, coverage=coverage, query_vector=vector)

    def _encode(self, query: str) -> tuple[QueryEncoding | None, np.ndarray | None]:
        """The query's word pieces (when a re-ranker needs them) and its vector (when a signal does)."""
        if self.parts.reranker is not None:
            encoding = self.queries.encode_query(query)
            return encoding, encoding.vector
        if self.parts.dense is not None:
            return None, self.queries.embed_query(query)
        return None, None

    def _signal_scores(self, query: str, vector: np.ndarray | None, visible: Visible,
                       keywords: KeywordView) -> SignalScores:
        """Each signal of the assembly, over what is visible; the keyword signals with the viewer's statistics
        (the assembly's own when the viewer may see every page)."""
        parts, candidates = self.parts, self.config.candidates
        restricted = keywords is not self.keyword_views.full
        section_keywords = keywords.section_keywords if restricted else parts.section_keywords
        page_keywords = keywords.page_keywords if restricted else parts.page_keywords
        return SignalScores(
            dense=parts.dense.scores(vector, visible.chunk_ids, candidates)
            if parts.dense is not None and vector is not None else None,
            section_keywords=section_keywords.scores(query, visible.chunk_ids, candidates)
            if parts.section_keywords is not None and section_keywords is not None else None,
            page_keywords=page_keywords.scores(query, visible.pages)
            if parts.page_keywords is not None and page_keywords is not None else None,
        )

    def _hits(self, page_scores: dict[str, float], ranked: RankedSections, promoted: dict[str, str],
              k: int) -> list[Hit]:
        """The ``k`` best pages (ties: by path) with the sections each shows."""
        hits = []
        for path in sorted(page_scores, key=lambda path: (-page_scores[path], path))[:k]:
            meta = self.index.pages[path]
            shown = self.sections.shown(ranked.matches.get(path, []), path, self.config.sections_per_page)
            hits.append(Hit(path, meta, page_scores[path], shown, superseded_by=meta.superseded_by,
                            promoted_from=promoted.get(path)))
        return hits
