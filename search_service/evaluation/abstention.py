"""Calibrating the abstention threshold on labelled questions, with a leave-one-out estimate."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search_service.evaluation.answers import evidence_of
from search_service.evaluation.questions import Question
from search_service.ranking import HybridRetriever

logger = logging.getLogger(__name__)

MIN_ANSWERED = 0.92  # the abstention rule's floor: at least this share of answerable questions answered
MIN_UNANSWERABLE_TO_SAVE = 15  # `kb tune --save` keeps a threshold calibrated on at least this many
DECIMALS = 4  # as printed for KB_ABSTAIN_THRESHOLD and the rates
CUT_BELOW_ALL = 0.01  # the lowest candidate threshold sits this far below the lowest evidence


@dataclass(frozen=True)
class AbstentionRates:
    """Shares of answerable questions answered and of unanswerable ones declined."""

    answered_rate: float
    abstain_rate: float

    @classmethod
    def at(cls, threshold: float, answerable: Sequence[float], unanswerable: Sequence[float]) -> AbstentionRates:
        """The rates of a threshold on the questions' evidence."""
        return cls(answered_rate=round(sum(e >= threshold for e in answerable) / len(answerable), DECIMALS),
                   abstain_rate=round(sum(e < threshold for e in unanswerable) / len(unanswerable), DECIMALS))


@dataclass(frozen=True)
class ThresholdRates:
    """A threshold and its rates."""

    threshold: float
    answered_rate: float
    abstain_rate: float


@dataclass(frozen=True)
class AbstentionReport:
    """The recommended threshold and its rates, the current one's, and a leave-one-out estimate
    (each question judged by a threshold chosen without it)."""

    threshold: float
    answered_rate: float
    abstain_rate: float
    current: ThresholdRates
    leave_one_out: AbstentionRates
    unanswerable_questions: int
    min_answered: float

    def to_json(self) -> dict[str, Any]:
        """The report as `kb tune --json` prints it under ``abstention``."""
        return dataclasses.asdict(self)


def choose_threshold(answerable: Sequence[float], unanswerable: Sequence[float], *,
                     min_answered: float = MIN_ANSWERED) -> float:
    """The abstention threshold that declines the most unanswerable questions while answering at
    least ``min_answered`` of the answerable ones (ties: the one answering the most), placed midway
    between the two evidence values it separates."""
    values = sorted(set(answerable) | set(unanswerable))
    # Rounded as printed for KB_ABSTAIN_THRESHOLD, so the rates reported are those of the printed value.
    cuts = [round(values[0] - CUT_BELOW_ALL, DECIMALS)]
    cuts += [round((a + b) / 2, DECIMALS) for a, b in itertools.pairwise(values)]
    best, best_key = cuts[0], (-1.0, -1.0)
    for cut in cuts:
        answered = sum(e >= cut for e in answerable) / (len(answerable) or 1)
        if answered < min_answered:
            continue
        key = (sum(e < cut for e in unanswerable) / (len(unanswerable) or 1), answered)
        if key > best_key:
            best, best_key = cut, key
    return best


def leave_one_out(evidence: Sequence[tuple[bool, float]], *, min_answered: float) -> AbstentionRates:
    """The rates when each question is judged by the threshold chosen on all the others."""
    answered = declined = 0
    for n, (ok, value) in enumerate(evidence):
        rest = [*evidence[:n], *evidence[n + 1:]]
        cut = choose_threshold([e for a, e in rest if a], [e for a, e in rest if not a], min_answered=min_answered)
        answered += ok and value >= cut
        declined += (not ok) and value < cut
    n_answerable = sum(ok for ok, _ in evidence)
    return AbstentionRates(answered_rate=round(answered / n_answerable, DECIMALS),
                           abstain_rate=round(declined / (len(evidence) - n_answerable), DECIMALS))


def tune_abstention(retriever: HybridRetriever, questions: list[Question], *, current: float,
                    min_answered: float = MIN_ANSWERED) -> AbstentionReport | None:
    """Recommend ``KB_ABSTAIN_THRESHOLD`` for a corpus from its labelled questions, with a
    leave-one-out estimate. None when the file has no unanswerable (or no answerable) questions."""
    evidence = list(zip((q.answerable for q in questions), evidence_of(retriever, questions), strict=True))
    answerable = [e for ok, e in evidence if ok]
    unanswerable = [e for ok, e in evidence if not ok]
    if not unanswerable or not answerable:
        return None
    threshold = choose_threshold(answerable, unanswerable, min_answered=min_answered)
    rates = AbstentionRates.at(threshold, answerable, unanswerable)
    now = AbstentionRates.at(current, answerable, unanswerable)
    return AbstentionReport(
        threshold=round(threshold, DECIMALS), answered_rate=rates.answered_rate, abstain_rate=rates.abstain_rate,
        current=ThresholdRates(current, now.answered_rate, now.abstain_rate),
        leave_one_out=leave_one_out(evidence, min_answered=min_answered),
        unanswerable_questions=len(unanswerable), min_answered=min_answered,
    )
