"""Answer quality of the extractive answerer on labelled questions.

This is the only module of ``evaluation`` that calls the answerer (``ask_each``,
``evidence_of``, ``threshold_in_force``), so a change to its API is adapted here.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from search_service.answering import AnswerSettings, abstain_threshold, ask, evidence_score
from search_service.evaluation.questions import EVAL_VIEWER, Question, answerable
from search_service.ranking import HybridRetriever
from search_service.settings import Settings

logger = logging.getLogger(__name__)

# An answer "hits" when one of its first this many citations is a gold page.
CITATIONS_CHECKED = 2
DECIMALS = 4  # as the retrieval metrics


@dataclass(frozen=True)
class AnswerDetail:
    """How one question was answered."""

    id: str
    answerable: bool
    answered: bool
    confidence: float
    cited: list[str]  # the pages of the first citations


@dataclass(frozen=True)
class AnswerReport:
    """``answered_rate``: answerable questions that got an answer; ``citation_hit_rate``: answered
    answerable questions whose first or second citation is a gold page; ``abstain_rate``:
    unanswerable questions that were declined; ``threshold``: the abstention threshold in force."""

    answered_rate: float
    citation_hit_rate: float
    abstain_rate: float
    threshold: float
    details: list[AnswerDetail]

    def to_json(self) -> dict[str, Any]:
        """The report as `kb eval --json` prints it under ``answers``."""
        return dataclasses.asdict(self)


def ask_each(retriever: HybridRetriever, questions: list[Question], settings: Settings) -> tuple[list[AnswerDetail], float]:
    """Each question's answer, and the abstention threshold in force: the one place evaluation
    calls the answerer."""
    answer_settings = AnswerSettings.from_settings(settings, retriever)
    details = []
    for q in questions:  # extractive: no LLM client is passed
        result = ask(retriever, q.question, settings=answer_settings, viewer=EVAL_VIEWER)
        details.append(AnswerDetail(q.id, q.answerable, result.answered, result.confidence,
                                    [c.path for c in result.citations[:CITATIONS_CHECKED]]))
    return details, answer_settings.abstain_threshold


def evaluate_answers(retriever: HybridRetriever, questions: list[Question], *, settings: Settings) -> AnswerReport:
    """Answer metrics of the extractive answerer over every question."""
    details, threshold = ask_each(retriever, questions, settings)
    pairs = list(zip(questions, details, strict=True))
    answered = [(q, d) for q, d in pairs if q.answerable and d.answered]
    hits = sum(any(path in q.gold for path in d.cited) for q, d in answered)
    declined = sum(not q.answerable and not d.answered for q, d in pairs)
    n_answerable = len(answerable(questions))
    n_unanswerable = len(questions) - n_answerable
    return AnswerReport(
        answered_rate=round(len(answered) / (n_answerable or 1), DECIMALS),
        citation_hit_rate=round(hits / (len(answered) or 1), DECIMALS),
        abstain_rate=round(declined / (n_unanswerable or 1), DECIMALS),
        threshold=threshold,
        details=details,
    )


def evidence_of(retriever: HybridRetriever, questions: list[Question]) -> list[float]:
    """The answerer's evidence score for each question's search (what the abstention threshold cuts)."""
    return [evidence_score(retriever.search(q.question, k=10, viewer=EVAL_VIEWER)) for q in questions]


def threshold_in_force(settings: Settings, retriever: HybridRetriever) -> float:
    """The abstention threshold the answerer uses for this corpus."""
    return abstain_threshold(settings, retriever)
