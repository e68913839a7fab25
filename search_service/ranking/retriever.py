"""Hybrid retrieval: dense (FAISS) + keyword (BM25) fusion, ranked at page and section level.

Filters and access control are applied before ranking: chunks a caller may not see are
excluded from the FAISS search itself (an ID selector) and from the BM25 candidates.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import faiss
import numpy as np

from search_service.content import PageMeta, page_url
from search_service.indexing.build import SearchIndex
from search_service.indexing.chunking import Chunk
from search_service.indexing.embedding import Embedder, QueryEncoding
from search_service.indexing.keyword import _WORD_RE, stem_word, tokenize

# fusion: hybrid without the re-ranking stage; baseline: the naive reference, reciprocal rank fusion
# (k = 60) of the BM25 and dense section rankings, each page ranked by its best section.
Mode = Literal["hybrid", "fusion", "bm25", "dense", "baseline"]
RRF_K = 60


@dataclass(frozen=True)
class Filters:
    """Restrict results to pages of these types, tags and audiences (any of each list)."""

    type: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()

    def allows(self, meta: PageMeta) -> bool:
        if self.type and meta.type.value not in self.type:
            return False
        if self.tag and not set(self.tag) & set(meta.tags):
            return False
        if self.audience and not set(self.audience) & {a.value for a in meta.audience}:
            return False
        return True


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the groups they belong to. Anonymous viewers see public pages only."""

    groups: frozenset[str] = frozenset()
    all_access: bool = False

    def may_see(self, meta: PageMeta) -> bool:
        return self.all_access or meta.access is None or bool(self.groups & set(meta.access))


ANONYMOUS = Viewer()


@dataclass(frozen=True)
class RetrievalParams:
    """Fusion weights, chosen on three labelled corpora (ours and two foreign documentation sites) as
    the setting that beats the naive baseline by the widest margin on all of them (docs/search-quality.md).

    A page's score is a weighted sum of three per-query min-max-normalised signals: its best
    chunk's dense similarity, its best chunk's BM25 score, and the whole page's BM25 score;
    a page's second-best chunk adds a little (evidence spread over sections). The best
    ``rerank_depth`` pages are then re-ordered by their normalised fused score plus
    ``rerank_weight`` times their normalised late-interaction score, within their original
    score range, so a re-ranked page never falls below one that was not re-ranked.
    """

    candidates: int = 200  # chunks taken from each retriever before fusion
    dense_weight: float = 0.4
    chunk_keyword_weight: float = 0.1
    page_keyword_weight: float = 0.1
    second_chunk_weight: float = 0.1
    deprecated_factor: float = 0.6  # deprecated pages keep this share of their score
    sections_per_page: int = 3
    # Late-interaction re-ranking (rerank.py) of the best pages on their best sections.
    rerank_depth: int = 30  # pages re-ranked; 0 turns the stage off
    rerank_sections: int = 3  # best sections per page compared token by token
    rerank_weight: float = 0.3  # weight of the normalised MaxSim score against the normalised fused score


@dataclass
class SectionMatch:
    chunk: Chunk
    score: float


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
        return self.sections[0].chunk


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    terms: list[str] = field(default_factory=list)
    dense_max: float = 0.0  # best raw cosine similarity among the chunks the viewer may see
    coverage: float = 0.0  # share of the query's words that occur anywhere in the content
    query_vector: np.ndarray | None = None  # the question's embedding, reused by the answerer


def _normalise(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.where(values > 0, 1.0, 0.0).astype(np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


class HybridRetriever:
    """Ranks the pages of a :class:`SearchIndex` for a question."""

    @classmethod
    def from_settings(cls, index: SearchIndex, embedder: Embedder, settings) -> HybridRetriever:
        """A retriever with the tunable parts (fusion weights, re-ranking weight and depth) taken
        from ``KB_`` variables that are set, else from the corpus's tuning file stored in the
        index (`kb tune --save`), else from the defaults."""
        import dataclasses

        ranking = settings.for_corpus(index.manifest.get("tuning"))
        dense, section_keywords, page_keywords = ranking.fusion_weights
        return cls(index, embedder, dataclasses.replace(
            RetrievalParams(), dense_weight=dense, chunk_keyword_weight=section_keywords,
            page_keyword_weight=page_keywords, rerank_depth=ranking.rerank_depth, rerank_weight=ranking.rerank_weight))

    def __init__(self, index: SearchIndex, embedder: Embedder, params: RetrievalParams | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.params = params or RetrievalParams()
        self.chunk_pages = [c.page_path for c in index.chunks]
        self._allowed_cache: dict = {}
        self._by_page: dict[str, list[int]] = defaultdict(list)
        for i, path in enumerate(self.chunk_pages):
            self._by_page[path].append(i)
        self._page_boosts = {path: meta.search.boost for path, meta in index.pages.items() if meta.search.boost != 1.0}

    def allowed(self, filters: Filters, viewer: Viewer) -> np.ndarray:
        """Indices of the chunks this viewer may see and the filters allow (cached per combination)."""
        key = (filters, viewer.all_access, frozenset(viewer.groups))
        cached = self._allowed_cache.get(key)
        if cached is None:
            ok_pages = {path for path, meta in self.index.pages.items() if viewer.may_see(meta) and filters.allows(meta)}
            cached = np.array(sorted(i for path in ok_pages for i in self._by_page.get(path, [])), dtype=np.int64)
            if len(self._allowed_cache) > 256:
                self._allowed_cache.clear()
            self._allowed_cache[key] = cached
        return cached

    def dense_scores(self, query_vector: np.ndarray, allowed: np.ndarray, k: int) -> dict[int, float]:
        if allowed.size == 0:
            return {}
        k = min(k, int(allowed.size))
        hnsw = isinstance(self.index.dense, faiss.IndexHNSW)
        if allowed.size == self.index.dense.ntotal:
            # Everything is visible: no selector needed (the common case, and the fastest).
            params = faiss.SearchParametersHNSW(efSearch=max(128, k)) if hnsw else None
        else:
            selector = faiss.IDSelectorBatch(allowed)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(128, k)) if hnsw else faiss.SearchParameters(sel=selector)
        scores, ids = self.index.dense.search(query_vector.reshape(1, -1), k, params=params)
        return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}

    def keyword_scores(self, query: str, allowed: np.ndarray, k: int) -> dict[int, float]:
        if allowed.size == 0:
            return {}
        scores = self.index.keyword.scores(query)
        sub = scores if allowed.size == scores.size else scores[allowed]
        if sub.size > k:  # partial selection: linear, not a full sort of every chunk
            top = np.argpartition(-sub, k - 1)[:k]
        else:
            top = np.arange(sub.size)
        ids = top if allowed.size == scores.size else allowed[top]
        return {int(i): float(v) for i, v in zip(ids, sub[top], strict=True) if v > 0}

    def page_keyword_scores(self, query: str, pages: set[str]) -> dict[str, float]:
        scores = self.index.page_keyword.scores(query)
        return {path: float(scores[row]) for row, path in enumerate(self.index.pages)
                if path in pages and row < scores.size and scores[row] > 0}

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Filters | None = None,
        viewer: Viewer = ANONYMOUS,
        mode: Mode = "hybrid",
        boost_pages: dict[str, float] | None = None,
    ) -> SearchResult:
        """Top ``k`` pages for ``query`` with their best sections.

        Args:
            query: the question, in the user's words.
            k: number of pages to return.
            filters: type / tag / audience restrictions (applied before ranking).
            viewer: whose access rights apply (restricted pages are invisible to others).
            mode: ``hybrid`` (default), or for ablations ``fusion`` (hybrid without late-interaction
                re-ranking), ``bm25`` or ``dense`` alone.
            boost_pages: optional multiplicative boosts by page path (e.g. "ask about this page").
        """
        p = self.params
        filters = filters or Filters()
        allowed = self.allowed(filters, viewer)
        visible_pages = {self.chunk_pages[i] for i in allowed.tolist()}
        use_dense = mode in ("hybrid", "fusion", "dense", "baseline")
        use_keyword = mode in ("hybrid", "fusion", "bm25", "baseline")
        use_rerank = mode == "hybrid" and self.index.tokens is not None and p.rerank_depth > 0
        encoded = self.embedder.encode_query(query) if use_rerank else None
        query_vector = encoded.vector if encoded is not None else self.embedder.embed_query(query) if use_dense else None
        dense = self.dense_scores(query_vector, allowed, p.candidates) if use_dense else {}
        keyword = self.keyword_scores(query, allowed, p.candidates) if use_keyword else {}
        page_keyword = self.page_keyword_scores(query, visible_pages) if use_keyword and mode != "baseline" else {}
        candidates = sorted(set(dense) | set(keyword))
        terms = tokenize(query)
        coverage = sum(t in self.index.page_keyword.vocab for t in terms) / len(terms) if terms else 0.0
        if not candidates and not page_keyword:
            return SearchResult(query=query, hits=[], terms=terms, coverage=coverage)

        # Chunk-level fusion, used to pick each page's best sections.
        d_floor = min(dense.values()) if dense else 0.0
        d = np.array([dense.get(i, d_floor) for i in candidates], dtype=np.float32)
        b = np.array([keyword.get(i, 0.0) for i in candidates], dtype=np.float32)
        if mode == "baseline":
            chunk_fused = _reciprocal_rank_fusion(candidates, dense, keyword)
        elif use_dense and use_keyword:
            chunk_fused = 0.5 * _normalise(d) + 0.5 * _normalise(b)
        else:
            chunk_fused = _normalise(d) if use_dense else _normalise(b)
        per_page: dict[str, list[SectionMatch]] = defaultdict(list)
        per_page_ids: dict[str, list[int]] = defaultdict(list)
        for i, score in sorted(zip(candidates, chunk_fused.tolist(), strict=True), key=lambda t: -t[1]):
            per_page[self.chunk_pages[i]].append(SectionMatch(self.index.chunks[i], float(score)))
            per_page_ids[self.chunk_pages[i]].append(i)

        if mode == "baseline":  # each page scores its best section's reciprocal-rank score
            page_scores = {path: matches[0].score for path, matches in per_page.items()}
        else:
            page_scores = self._fuse_pages(dense, keyword, page_keyword, sorted(set(per_page) | set(page_keyword)))
        if encoded is not None:
            self._rerank(encoded, page_scores, per_page_ids)
        # Authors' front matter `search: {boost: N}` multiplies the fused score. Min-max normalisation
        # gives the weakest candidate 0, which no boost lifts; every other page moves.
        for path, boost in self._page_boosts.items():
            if path in page_scores:
                page_scores[path] *= boost
        if boost_pages:
            for path, factor in boost_pages.items():
                if path in page_scores:
                    page_scores[path] *= factor

        promoted: dict[str, str] = {}
        for path in list(page_scores):
            meta = self.index.pages[path]
            if meta.status.value != "deprecated":
                continue
            original = page_scores[path]
            page_scores[path] = original * p.deprecated_factor
            successor = meta.superseded_by
            if successor and successor in visible_pages and page_scores.get(successor, -1.0) < original:
                page_scores[successor] = original
                promoted[successor] = path

        ranked = sorted(page_scores, key=lambda path: (-page_scores[path], path))[:k]
        hits = []
        for path in ranked:
            meta = self.index.pages[path]
            sections = _best_sections(per_page.get(path, []), p.sections_per_page) or self._first_section(path)
            hits.append(Hit(path, meta, page_scores[path], sections, superseded_by=meta.superseded_by,
                            promoted_from=promoted.get(path)))
        return SearchResult(query=query, hits=hits, terms=terms, dense_max=max(dense.values(), default=0.0),
                            query_vector=query_vector,
                            coverage=coverage)

    def _fuse_pages(self, dense: dict[int, float], keyword: dict[int, float], page_keyword: dict[str, float],
                    page_paths: list[str]) -> dict[str, float]:
        """Page-level fusion of the three signals (those that were computed), each min-max normalised."""
        p = self.params

        def best_two(scores: dict[int, float]) -> dict[str, float]:
            top: dict[str, list[float]] = defaultdict(list)
            for i, value in sorted(scores.items(), key=lambda t: -t[1]):
                if len(top[self.chunk_pages[i]]) < 2:
                    top[self.chunk_pages[i]].append(value)
            return {path: v[0] + p.second_chunk_weight * (v[1] if len(v) > 1 else 0.0) for path, v in top.items()}

        signals = []
        if dense:
            dense_pages = best_two(dense)
            floor = min(dense_pages.values())
            signals.append((p.dense_weight, [dense_pages.get(path, floor) for path in page_paths]))
        if keyword:
            peak = max(keyword.values())
            chunk_keyword = best_two({i: v / peak for i, v in keyword.items()})
            signals.append((p.chunk_keyword_weight, [chunk_keyword.get(path, 0.0) for path in page_paths]))
        if page_keyword:
            peak = max(page_keyword.values()) or 1.0
            signals.append((p.page_keyword_weight, [page_keyword.get(path, 0.0) / peak for path in page_paths]))
        fused = np.zeros(len(page_paths), dtype=np.float32)
        for weight, values in signals:
            fused += weight * _normalise(np.array(values, dtype=np.float32))
        return dict(zip(page_paths, fused.tolist(), strict=True))

    def _rerank(self, encoded: QueryEncoding, page_scores: dict[str, float], per_page_ids: dict[str, list[int]]) -> None:
        """Re-order the best pages by late interaction, changing their scores in place."""
        p = self.params
        top = sorted(page_scores, key=lambda path: (-page_scores[path], path))[:p.rerank_depth]
        if len(top) < 2:
            return
        sections: list[list[int]] = []
        for path in top:
            ids = [i for i in per_page_ids.get(path, []) if self.index.chunks[i].kind != "profile"]
            if not ids:  # ranked by page-level keywords alone: use the page's opening sections
                ids = self._body_ids(path)
            sections.append(ids[:p.rerank_sections])
        flat = [i for ids in sections for i in ids]
        scores = self.index.tokens.maxsim(encoded, flat)
        best, position = [], 0
        for ids in sections:
            best.append(float(scores[position: position + len(ids)].max()) if ids else 0.0)
            position += len(ids)
        # Re-order the top pages by normalised fused score + weight x normalised MaxSim, mapped back
        # onto their original score range: re-ranked pages stay above every page that was not.
        fused = np.array([page_scores[path] for path in top], dtype=np.float32)
        combined = _normalise(fused) + p.rerank_weight * _normalise(np.array(best, dtype=np.float32))
        low, high = float(fused.min()), float(fused.max())
        for path, value in zip(top, (combined / (1.0 + p.rerank_weight)).tolist(), strict=True):
            page_scores[path] = low + (high - low) * value

    def _body_ids(self, path: str) -> list[int]:
        """Indices of a page's chunks in reading order: its sections, or its profile if it has none."""
        ids = self._by_page.get(path, [])
        return [i for i in ids if self.index.chunks[i].kind != "profile"] or ids

    def page_chunks(self, path: str) -> list[Chunk]:
        """The chunks of one page in reading order (the page profile excluded)."""
        return [self.index.chunks[i] for i in self._body_ids(path) if self.index.chunks[i].kind != "profile"]

    def _first_section(self, path: str) -> list[SectionMatch]:
        """The page's opening section, for pages ranked without a matching chunk."""
        return [SectionMatch(self.index.chunks[self._body_ids(path)[0]], 0.0)]


def _reciprocal_rank_fusion(ids: list[int], *rankings: dict[int, float], k: int = RRF_K) -> np.ndarray:
    """Sum over rankings of 1 / (k + rank) for each id (rank 1 = best score; absent = no share)."""
    fused = dict.fromkeys(ids, 0.0)
    for scores in rankings:
        for rank, i in enumerate(sorted(scores, key=lambda i: -scores[i]), start=1):
            fused[i] += 1.0 / (k + rank)
    return np.array([fused[i] for i in ids], dtype=np.float32)


def _best_sections(matches: list[SectionMatch], limit: int) -> list[SectionMatch]:
    """Best sections of a page, preferring real sections over the page profile."""
    real = [m for m in matches if m.chunk.kind != "profile"]
    profile = [m for m in matches if m.chunk.kind == "profile"]
    out = real[:limit] or profile[:1]
    return out


def chunk_url(chunk: Chunk, site_url: str = "/") -> str:
    """Link to the chunk's section: page URL plus the MkDocs anchor."""
    base = site_url if site_url.endswith("/") else site_url + "/"
    url = base + page_url(chunk.page_path)
    return f"{url}#{chunk.anchor}" if chunk.anchor else url


@lru_cache(maxsize=16384)
def _token_stems(text: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """Whitespace tokens of a text and the stem of each (None for stopwords/punctuation); cached per text."""
    tokens = tuple(text.split())
    stems = []
    for token in tokens:
        match = _WORD_RE.search(token.lower())
        stems.append(stem_word(match.group(0)) if match else None)
    return tokens, tuple(stems)


def make_snippet(text: str, terms: list[str], *, words: int = 36) -> str:
    """An HTML-escaped window of ``text`` with query terms wrapped in ``<mark>``."""
    tokens, stems = _token_stems(text)
    if not tokens:
        return ""
    wanted = set(terms)
    flags = [stem in wanted for stem in stems]
    # The window with the most query terms (prefix sums keep this linear in the text length).
    prefix = np.concatenate([[0], np.cumsum(flags)])
    span = min(words, len(tokens))
    counts = prefix[span:] - prefix[: len(tokens) - span + 1]
    best_start = int(np.argmax(counts))
    end = best_start + span
    out, plain = [], []
    for i in range(best_start, end):
        if flags[i]:
            if plain:
                out.append(html.escape(" ".join(plain)))
                plain = []
            out.append(f"<mark>{html.escape(tokens[i])}</mark>")
        else:
            plain.append(tokens[i])
    if plain:
        out.append(html.escape(" ".join(plain)))
    prefix_mark = "… " if best_start > 0 else ""
    suffix = " …" if end < len(tokens) else ""
    return prefix_mark + " ".join(out) + suffix
