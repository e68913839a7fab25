"""The evidence an extractive answer chooses from: its source sections, their units, and a score per unit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from search_service.answering.sources import page_rank, select_sources
from search_service.answering.units import Unit, split_units
from search_service.answering.weights import ExtractiveWeights
from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import tokenize
from search_service.ranking.retriever import SearchResult

# Questions asking how to do something, or for the steps: they are answered with a procedure.
PROCEDURE_RE = re.compile(
    r"\b(how (do|does|should|can|to|would)|steps?|process|procedure|checklist|what do (i|we) (need to )?do)\b",
    re.IGNORECASE)


class DocumentEmbedder(Protocol):
    """The embedding calls the answerer makes (an :class:`~search_service.indexing.embedding.Embedder`)."""

    def embed_query(self, text: str) -> np.ndarray: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


class Corpus(Protocol):
    """What the extractive answerer reads besides the search result (a ``HybridRetriever`` is one)."""

    @property
    def embedder(self) -> DocumentEmbedder: ...

    def page_chunks(self, path: str) -> list[Chunk]: ...


def is_procedural(question: str) -> bool:
    """Whether the question asks how to do something (and so wants steps)."""
    return bool(PROCEDURE_RE.search(question))


@dataclass
class Evidence:
    """Candidate units of one answer, scored; policies may add sections to ``sources`` as they quote them."""

    corpus: Corpus
    result: SearchResult
    sources: list[Chunk]
    units: list[Unit]
    scores: np.ndarray  # one per unit, higher is better
    procedural: bool
    weights: ExtractiveWeights
    lead: int = 0  # index of the unit that best answers the question

    @property
    def top_page(self) -> str:
        return self.result.hits[0].page_path

    def page_rank(self, source: int) -> int:
        """0 when the source is a section of the best page, 1 for the second page, ..."""
        return page_rank(self.sources, source)

    def add_source(self, chunk: Chunk) -> int:
        """The index of ``chunk`` in the sources, appended first if it is not there yet."""
        if chunk not in self.sources:
            self.sources.append(chunk)
        return self.sources.index(chunk)


def _has_steps(chunk: Chunk) -> bool:
    return any(u.numbered for u in split_units(chunk, 0))


def gather_evidence(corpus: Corpus, question: str, result: SearchResult, weights: ExtractiveWeights) -> Evidence | None:
    """Sources, units and unit scores for a question the retriever found hits for; None when no
    source has a quotable unit."""
    procedural = is_procedural(question)
    sources = select_sources(result, pages=weights.source_pages, per_page=weights.sections_per_page,
                             close=weights.close_share)
    if procedural:
        # The best page's numbered procedures are evidence for a "how" question even when their
        # words matched less than the page's introduction did.
        sources += [c for c in corpus.page_chunks(result.hits[0].page_path) if c not in sources and _has_steps(c)]
    units = [u for i, chunk in enumerate(sources) for u in split_units(chunk, i)]
    if not units:
        return None
    evidence = Evidence(corpus, result, sources, units, np.zeros(len(units), dtype=np.float32), procedural, weights)
    evidence.scores = score_units(evidence, question)
    evidence.lead = lead_unit(evidence)
    return evidence


def score_units(evidence: Evidence, question: str) -> np.ndarray:
    """Each unit's similarity to the question, with its heading as context, adjusted by the weights."""
    result, sources, units, w = evidence.result, evidence.sources, evidence.units, evidence.weights
    embedder = evidence.corpus.embedder
    query = result.query_vector if result.query_vector is not None else embedder.embed_query(question)
    texts = [f"{sources[u.source].heading_path[-1]}: {u.text}" if sources[u.source].heading_path else u.text
             for u in units]
    scores: np.ndarray = embedder.embed_documents(texts) @ query
    wanted = set(result.terms)
    overlap = np.array([len(wanted & set(tokenize(u.text))) / (len(wanted) or 1) for u in units], dtype=np.float32)
    rank_penalty = np.array([w.page_rank_penalty * evidence.page_rank(u.source) for u in units], dtype=np.float32)
    section_score = {m.chunk.id: m.score for hit in result.hits for m in hit.sections}
    section_bonus = np.array([w.section_trust * section_score.get(sources[u.source].id, 0.0) for u in units],
                             dtype=np.float32)
    scores = scores + w.word_overlap * overlap + section_bonus - rank_penalty
    if evidence.procedural:
        scores = scores + w.numbered_bonus * np.array([u.numbered for u in units], dtype=np.float32)
    return _prefer_primary_section(scores, units, w.primary_margin)


def _prefer_primary_section(scores: np.ndarray, units: list[Unit], margin: float) -> np.ndarray:
    """Answer from the retriever's best section unless another section has clearly better evidence."""
    primary = np.array([u.source == 0 for u in units])
    if primary.any() and scores[~primary].max(initial=-1.0) < scores[primary].max() + margin:
        return np.where(primary, scores, scores - margin)
    return scores


def lead_unit(evidence: Evidence) -> int:
    """The unit that best answers the question. A "how do we ..." question is answered by the
    best-matching numbered step of the best page, when that page has one, rather than by its
    introduction."""
    scores = evidence.scores
    if evidence.procedural:
        in_top_page = [i for i, u in enumerate(evidence.units) if u.numbered and evidence.page_rank(u.source) == 0]
        if in_top_page:
            return max(in_top_page, key=lambda i: scores[i])
    return int(np.argmax(scores))
