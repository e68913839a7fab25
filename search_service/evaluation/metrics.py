"""Retrieval metrics from the rank of each question's first gold page."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Reported figures keep 4 decimals: enough to show one question in a thousand moving.
DECIMALS = 4
RECALL_AT = (1, 5)  # recall@1: the first page answers; recall@5: one of a screenful does
MRR_DEPTH = 10  # reciprocal rank counts a gold page within the first 10, the pages a search shows


def rank_of_gold(pages: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based rank of the first gold page in a ranked page list, or None."""
    for rank, path in enumerate(pages, start=1):
        if path in gold:
            return rank
    return None


@dataclass(frozen=True)
class RetrievalMetrics:
    """recall@1, recall@5 and MRR@10 of one retriever over the answerable questions."""

    recall_at_1: float
    recall_at_5: float
    mrr_at_10: float

    @classmethod
    def from_ranks(cls, ranks: Sequence[int | None]) -> RetrievalMetrics:
        """The metrics of the gold ranks of answerable questions (None: not found)."""
        n = len(ranks) or 1
        found = [r for r in ranks if r is not None]
        first, screen = RECALL_AT
        return cls(
            recall_at_1=round(sum(1 for r in found if r <= first) / n, DECIMALS),
            recall_at_5=round(sum(1 for r in found if r <= screen) / n, DECIMALS),
            mrr_at_10=round(sum(1.0 / r for r in found if r <= MRR_DEPTH) / n, DECIMALS),
        )

    def to_json(self) -> dict[str, float]:
        """The figures under the keys `kb eval --json` prints."""
        return {"recall@1": self.recall_at_1, "recall@5": self.recall_at_5, "mrr@10": self.mrr_at_10}

    def sort_key(self) -> tuple[float, float]:
        """How `kb tune` compares settings: MRR@10, then recall@5."""
        return self.mrr_at_10, self.recall_at_5
