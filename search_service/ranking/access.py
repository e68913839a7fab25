"""Corpus statistics of the pages one viewer may see: no score or vocabulary depends on a page they may not.

BM25's document frequencies and average length, the re-ranker's word-piece document frequencies, and
the vocabulary an answer's coverage is measured against, are statistics of a whole corpus. Taken over
every page they let an outsider probe restricted text: a codename found only in a restricted page
raised the confidence of an answer, and a word a restricted page shares lowered its weight everywhere.
A viewer who may see every page ranks with the index's own statistics (results unchanged); any other
viewer gets keyword indexes and word-piece frequencies rebuilt over the pages they may see, cached per
set of pages, that score exactly as an index of those pages alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from bm25s.scoring import _select_idf_scorer

from search_service.indexing.artifact import SearchIndex
from search_service.indexing.artifact_tokens import IDS_SUFFIX, SEGMENTS_FILE, TOKENS_DIR
from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import KeywordIndex, tokenize
from search_service.indexing.tokens import TokenStore
from search_service.ranking.sections import PageSections
from search_service.ranking.signals import PageKeywordSignal, SectionKeywordSignal

logger = logging.getLogger(__name__)

# Set by hand: distinct sets of visible pages whose keyword indexes are kept before the cache starts afresh.
KEYWORD_VIEW_CACHE_SIZE = 32
# How far a recovered term frequency may sit from a whole number, and a page's recovered length
# normalisation from the one its length implies, before the recovery is judged to have failed
# (float32 scores recover counts to about 1e-5).
TERM_COUNT_TOLERANCE = 0.05
LENGTH_NORM_TOLERANCE = 1e-3


@dataclass
class KeywordView:
    """The keyword signals and the vocabulary of one set of visible pages."""

    section_keywords: SectionKeywordSignal
    page_keywords: PageKeywordSignal
    vocab: Collection[str]  # the words of those pages (what an answer's coverage is measured against)
    chunk_ids: np.ndarray | None = None  # the visible chunks (sorted); None: every chunk
    tokens: TokenStore | None = None  # word-piece frequencies of those chunks, once the re-ranker asked for them


class KeywordViews:
    """Keyword views per set of visible pages; the index's own indexes when every page is visible."""

    def __init__(self, index: SearchIndex, sections: PageSections) -> None:
        self.index = index
        self.pages = list(index.pages)  # the page of each row of the page-level index, in index order
        self.sections = sections
        self.page_keywords = index.page_keyword
        self.full = KeywordView(SectionKeywordSignal(index.keyword), PageKeywordSignal(index.page_keyword, self.pages),
                                index.page_keyword.vocab, tokens=index.tokens)
        self._page_documents: list[list[str]] | None = None
        self._cache: dict[frozenset[str], KeywordView] = {}

    def for_pages(self, visible: frozenset[str]) -> KeywordView:
        """The keyword view of exactly these pages."""
        if len(visible) == len(self.pages):
            return self.full
        view = self._cache.get(visible)
        if view is None:
            view = self._build(visible)
            if len(self._cache) >= KEYWORD_VIEW_CACHE_SIZE:
                self._cache.clear()
            self._cache[visible] = view
        return view

    def _build(self, visible: frozenset[str]) -> KeywordView:
        """BM25 over the visible chunks and pages only, rows in index order (as a build of those pages has them)."""
        chunk_ids = np.array([i for i, path in enumerate(self.sections.page_of) if path in visible], dtype=np.int64)
        chunks = self.sections.chunks
        sections = KeywordIndex.build([chunks[i].embed_text() for i in chunk_ids.tolist()] or [""])
        documents = self._documents()
        rows = [row for row, path in enumerate(self.pages) if path in visible]
        pages = _keyword_index([documents[row] for row in rows] or [["_empty_"]])
        return KeywordView(SectionKeywordSignal(sections, chunk_ids), PageKeywordSignal(pages, [self.pages[r] for r in rows]),
                           pages.vocab, chunk_ids)

    def tokens(self, view: KeywordView) -> TokenStore | None:
        """The word-piece vectors with the view's document frequencies (counted on first use: only the
        re-ranker needs them); None when the index has none."""
        if view.tokens is None and view.chunk_ids is not None and self.index.tokens is not None:
            view.tokens = visible_tokens(self.index.tokens, self.index.path / TOKENS_DIR, view.chunk_ids)
        return view.tokens

    def _documents(self) -> list[list[str]]:
        """Each page's words as the page-level index counted them (recovered once, see :func:`document_words`)."""
        if self._page_documents is None:
            self._page_documents = document_words(self.page_keywords, self.pages, self.sections)
        return self._page_documents


def visible_tokens(tokens: TokenStore, directory: Path, chunk_ids: np.ndarray) -> TokenStore:
    """The word-piece vectors with document frequencies counted over ``chunk_ids`` only (as a build of
    those chunks alone counts them); the vectors themselves are shared.

    Without the build's piece ids (an index held in memory) no piece counts as seen: the query's
    pieces then weigh alike, which depends on nothing but the number of visible chunks.
    """
    try:
        listing = json.loads((directory / SEGMENTS_FILE).read_text())
        # Read into memory (not mapped): a file changed on disk must not be able to crash the server.
        pieces = [np.load(directory / f"{entry['key']}{IDS_SUFFIX}") for entry in listing["segments"]]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        logger.warning("word-piece ids unreadable in %s (%s): the re-ranker weighs query pieces alike", directory, exc)
        pieces = []
    counted: list[np.ndarray] = []
    for chunk in chunk_ids.tolist():
        number, start, end = (int(v) for v in tokens.spans[chunk])
        if number < len(pieces):
            counted.append(np.unique(pieces[number][start:end]))
    everything = np.concatenate(counted) if counted else np.zeros(0, np.int64)
    df = np.bincount(everything.astype(np.int64), minlength=1).astype(np.int32)
    view = TokenStore(tokens.segments, tokens.spans, df)
    view.n_docs = int(chunk_ids.size)  # the frequencies' corpus is the visible chunks, not every chunk stored
    return view


def _keyword_index(documents: list[list[str]]) -> KeywordIndex:
    """BM25 over documents already split into words, configured as :meth:`KeywordIndex.build` configures it."""
    retriever = bm25s.BM25()
    retriever.index(documents, show_progress=False)
    return KeywordIndex(retriever)


def document_words(keyword: KeywordIndex, pages: Sequence[str], sections: PageSections) -> list[list[str]]:
    """The words of each document of a page-level BM25 index, recovered from its stored scores.

    The index keeps only ``idf(t) * tf / (tf + K_d)`` per word and page (``K_d`` the page's length
    normalisation), not the page text. Dividing by the idf (known from the document frequency) gives
    ``tf / (tf + K_d)``; a page's rarest word occurs once, which gives ``K_d`` and then every count.
    The counts are checked against the lengths they imply; a page that fails the check (every word
    repeated) falls back to the words of its chunks, logged.
    """
    retriever = keyword.retriever
    data = np.asarray(retriever.scores["data"], dtype=np.float64)
    indices = np.asarray(retriever.scores["indices"])
    indptr = np.asarray(retriever.scores["indptr"])
    n_docs = int(retriever.scores["num_docs"])
    doc_freqs = np.diff(indptr)
    idf_of = _select_idf_scorer(retriever.idf_method)
    idf = np.array([idf_of(int(df), N=n_docs) if df else 1.0 for df in doc_freqs], dtype=np.float64)
    words = np.repeat(np.arange(doc_freqs.size), doc_freqs)  # the word of each stored score
    saturation = data / idf[words]  # tf / (tf + K_d)
    per_doc: list[list[tuple[int, float]]] = [[] for _ in range(n_docs)]
    for word, doc, value in zip(words.tolist(), indices.tolist(), saturation.tolist(), strict=True):
        per_doc[doc].append((word, value))
    counts = [_term_counts(entries) for entries in per_doc]
    lengths = np.array([sum(c.values()) if c else 0 for c in counts], dtype=np.float64)
    k1, b = float(retriever.k1), float(retriever.b)
    average = lengths.mean() if lengths.size else 1.0
    vocab = {word_id: word for word, word_id in retriever.vocab_dict.items()}
    documents = []
    for doc, (entries, count) in enumerate(zip(per_doc, counts, strict=True)):
        expected = k1 * ((1 - b) + b * lengths[doc] / average)
        recovered = _length_norm(entries)
        if count and abs(recovered - expected) <= LENGTH_NORM_TOLERANCE * expected:
            documents.append([vocab[word] for word, n in sorted(count.items()) for _ in range(n)])
        else:
            logger.warning("page %s: keyword counts not recoverable, using its chunks' words", pages[doc])
            documents.append(_chunk_words(sections.ids(pages[doc]), sections.chunks))
    return documents


def _length_norm(entries: list[tuple[int, float]]) -> float:
    """``K_d`` from a page's rarest word, taken to occur once: ``s = 1 / (1 + K_d)``."""
    lowest = min((value for _, value in entries), default=1.0)
    return 1.0 / lowest - 1.0 if 0.0 < lowest < 1.0 else 0.0


def _term_counts(entries: list[tuple[int, float]]) -> dict[int, int]:
    """Each word's count in a page from ``s = tf / (tf + K_d)``; empty when a count is not a whole number."""
    norm = _length_norm(entries)
    counts: dict[int, int] = {}
    for word, value in entries:
        count = value * norm / (1.0 - value) if value < 1.0 else 0.0
        if count < 1.0 - TERM_COUNT_TOLERANCE or abs(count - round(count)) > TERM_COUNT_TOLERANCE:
            return {}
        counts[word] = round(count)
    return counts


def _chunk_words(ids: Sequence[int], chunks: Sequence[Chunk]) -> list[str]:
    """A page's words from its chunks (a fallback: close to, not exactly, the page as indexed)."""
    return [word for i in ids for word in tokenize(chunks[i].text)] or ["_empty_"]
