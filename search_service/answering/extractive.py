"""Extractive answers: quote the best evidence with citations, or abstain.

The answer quotes the best evidence (sentences, steps, checklist items, table rows) from the top
sections, in reading order, each followed by its citation ``[n]``; a numbered procedure stays
numbered. When the evidence is too weak it abstains and suggests the nearest pages instead of
guessing. Which units are quoted is decided by the first policy of :data:`POLICIES` that applies,
else by the ranked passages; add a policy there (a function of the :class:`Evidence` returning
the units to quote, or None when it does not apply).
"""

from __future__ import annotations

from collections.abc import Callable

from search_service.answering.citations import check_citations, make_citations, number_sections, render_answer
from search_service.answering.config import AnswerSettings, abstain_threshold
from search_service.answering.coverage import (
    NOT_COVERED,
    abstain,
    confidence_from_evidence,
    evidence_score,
    is_covered,
)
from search_service.answering.evidence import Corpus, Evidence, gather_evidence
from search_service.answering.passages import ranked_passages
from search_service.answering.procedures import numbered_procedure, steps_as_headings
from search_service.answering.results import AnswerMode, AnswerResult, Citation, Suggestion
from search_service.answering.units import Unit
from search_service.answering.weights import WEIGHTS, ExtractiveWeights
from search_service.ranking.retriever import SearchResult

__all__ = [
    "NOT_COVERED", "POLICIES", "AnswerResult", "Citation", "Suggestion", "abstain_threshold", "check_citations",
    "choose_units", "confidence_from_evidence", "evidence_score", "extractive_answer",
]

AnswerPolicy = Callable[[Evidence], list[Unit] | None]

# Tried in order; the first that returns units writes the answer, else the ranked passages do.
POLICIES: tuple[AnswerPolicy, ...] = (steps_as_headings, numbered_procedure)


def choose_units(evidence: Evidence) -> list[Unit]:
    """The units to quote, by the first policy that applies."""
    for policy in POLICIES:
        units = policy(evidence)
        if units is not None:
            return units
    return ranked_passages(evidence)


def extractive_answer(corpus: Corpus, question: str, result: SearchResult, *, settings: AnswerSettings,
                      fallback: str | None = None, weights: ExtractiveWeights = WEIGHTS) -> AnswerResult:
    """Quote the best evidence with citations, or abstain when the evidence is weak.

    Args:
        corpus: the retriever (or anything giving a page's chunks and the embedder).
        question: the question as asked.
        result: the retriever's result for it.
        settings: the abstention threshold and the citation links' prefix.
        fallback: why a generative request is answered extractively, if it is.
        weights: the policies' weights.
    """
    confidence = confidence_from_evidence(evidence_score(result), settings.abstain_threshold)
    evidence = gather_evidence(corpus, question, result, weights) if is_covered(result, confidence) else None
    if evidence is None:
        return abstain(result, confidence, AnswerMode.extractive, settings.site_url, fallback=fallback)
    chosen = choose_units(evidence)
    numbers, used = number_sections(chosen, evidence.sources)
    return AnswerResult(
        answer=render_answer(chosen, numbers),
        answered=True,
        citations=make_citations(evidence.sources, used, result.terms, settings.site_url),
        confidence=round(confidence, 4),
        mode=AnswerMode.extractive,
        fallback=fallback,
        sources=[evidence.sources[i] for i in used],
    )
