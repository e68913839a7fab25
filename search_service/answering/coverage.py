"""Evidence and abstention: whether the playbooks cover a question, and the honest "not covered"."""

from __future__ import annotations

import math

from search_service.answering.results import AnswerMode, AnswerResult, Suggestion
from search_service.answering.weights import ANSWER_CONFIDENCE, CONFIDENCE_SCALE, COVERAGE_WEIGHT, SUGGESTED_PAGES
from search_service.ranking.retriever import SearchResult, chunk_url

NOT_COVERED = "The playbooks don't cover this."


def evidence_score(result: SearchResult) -> float:
    """Raw evidence that the content answers the query: best dense similarity, minus unknown words."""
    return result.dense_max - COVERAGE_WEIGHT * (1.0 - result.coverage)


def confidence_from_evidence(evidence: float, threshold: float) -> float:
    """0..1, 0.5 exactly at the abstention threshold."""
    return 1.0 / (1.0 + math.exp(-(evidence - threshold) / CONFIDENCE_SCALE))


def is_covered(result: SearchResult, confidence: float) -> bool:
    """Whether to answer at all: something was found and the evidence reaches the threshold."""
    return confidence >= ANSWER_CONFIDENCE and bool(result.hits)


def abstain(result: SearchResult, confidence: float, mode: AnswerMode, site_url: str, *,
            fallback: str | None = None) -> AnswerResult:
    """The 'not covered' answer, with the nearest pages as suggestions."""
    suggestions = [Suggestion(h.meta.title, chunk_url(h.best, site_url).split("#")[0], h.page_path)
                   for h in result.hits[:SUGGESTED_PAGES]]
    text = NOT_COVERED
    if suggestions:
        text += " The nearest pages are: " + "; ".join(s.title for s in suggestions) + "."
    return AnswerResult(answer=text, answered=False, citations=[], confidence=round(confidence, 4), mode=mode,
                        suggestions=suggestions, fallback=fallback)
