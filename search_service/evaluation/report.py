"""`kb eval`: retrieval of the hybrid and its ablations, then answer quality, in one report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from search_service.evaluation.answers import AnswerReport, evaluate_answers
from search_service.evaluation.comparison import RetrievalReport, comparison_retrievers, evaluate_retrieval
from search_service.evaluation.questions import Question
from search_service.ranking import HybridRetriever
from search_service.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalReport:
    """What `kb eval` measured: retrieval per retriever, and the answers."""

    retrieval: RetrievalReport
    answers: AnswerReport

    def to_json(self) -> dict[str, Any]:
        """The report as `kb eval --json` prints it."""
        return {**self.retrieval.to_json(), "answers": self.answers.to_json()}


def evaluate(retriever: HybridRetriever, questions: list[Question], *, settings: Settings) -> EvalReport:
    """`kb eval`: the service's retriever against its ablations (:func:`comparison_retrievers`),
    then the extractive answers."""
    return EvalReport(evaluate_retrieval(comparison_retrievers(retriever), questions),
                      evaluate_answers(retriever, questions, settings=settings))
