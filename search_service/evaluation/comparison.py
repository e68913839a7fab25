"""The hybrid against simpler retrievers assembled from the same parts, on labelled questions."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search_service.evaluation.metrics import RetrievalMetrics, rank_of_gold
from search_service.evaluation.questions import EVAL_VIEWER, Question, answerable
from search_service.ranking import HybridRetriever
from search_service.ranking.fusion import ReciprocalRankFusion

logger = logging.getLogger(__name__)

HYBRID = "hybrid"
# The retrievers `kb eval` reports, in its order: the hybrid first, then what it is compared with.
COMPARISONS = (HYBRID, "fusion", "bm25", "dense", "baseline")
# Misses list the hybrid's questions whose gold page is not first, with this many of its top pages.
MISS_TOP_PAGES = 3
# A simpler retriever "beats" the hybrid by more than this MRR@10 (one question in 40 moving from rank 1 to 2).
WARNING_MARGIN = 0.01


def comparison_retrievers(retriever: HybridRetriever) -> dict[str, HybridRetriever]:
    """The hybrid and its ablations, sharing its index, embedder and configuration:

    ``fusion``: the hybrid without late-interaction re-ranking; ``bm25``: the section and page
    keyword signals alone; ``dense``: the dense signal alone; ``baseline``: the naive reference,
    reciprocal rank fusion (k = 60) of the BM25 and dense section rankings, each page ranked by
    its best section.
    """
    parts = retriever.parts
    fusion = dataclasses.replace(parts, reranker=None)
    return {
        HYBRID: retriever,
        "fusion": retriever.with_parts(fusion),
        "bm25": retriever.with_parts(dataclasses.replace(fusion, dense=None)),
        "dense": retriever.with_parts(dataclasses.replace(fusion, section_keywords=None, page_keywords=None)),
        "baseline": retriever.with_parts(dataclasses.replace(
            fusion, page_keywords=None, fusion=ReciprocalRankFusion(retriever.config.rrf_k))),
    }


@dataclass(frozen=True)
class Miss:
    """An answerable question whose gold page the hybrid did not rank first."""

    id: str
    question: str
    gold: list[str]
    rank: int | None
    top: list[str]

    def to_json(self) -> dict[str, Any]:
        """The miss as `kb eval --json` prints it."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class QuestionCounts:
    """How many questions a file has, and how many of them are answerable."""

    total: int
    answerable: int
    unanswerable: int

    @classmethod
    def of(cls, questions: list[Question]) -> QuestionCounts:
        """The counts of a question list."""
        n = len(answerable(questions))
        return cls(total=len(questions), answerable=n, unanswerable=len(questions) - n)


@dataclass(frozen=True)
class RetrievalReport:
    """Metrics per retriever (the hybrid first), the hybrid's misses, and advice."""

    metrics: dict[str, RetrievalMetrics]
    questions: QuestionCounts
    misses: list[Miss]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        """The report as `kb eval --json` prints it (without the answers)."""
        return {**{name: m.to_json() for name, m in self.metrics.items()},
                "questions": dataclasses.asdict(self.questions),
                "misses": [m.to_json() for m in self.misses], "warnings": list(self.warnings)}


def evaluate_retrieval(retrievers: Mapping[str, HybridRetriever], questions: list[Question]) -> RetrievalReport:
    """Metrics of each retriever over the answerable questions, plus the misses of the one named
    ``hybrid`` (if any) and warnings when a simpler retriever beats it.

    Args:
        retrievers: by name, e.g. :func:`comparison_retrievers` of the service's retriever.
        questions: labelled questions; the unanswerable ones are only counted.
    """
    labelled = answerable(questions)
    metrics: dict[str, RetrievalMetrics] = {}
    misses: list[Miss] = []
    for name, retriever in retrievers.items():
        ranks = []
        for q in labelled:
            pages = [h.page_path for h in retriever.search(q.question, k=10, viewer=EVAL_VIEWER).hits]
            rank = rank_of_gold(pages, q.gold)
            ranks.append(rank)
            if name == HYBRID and (rank is None or rank > 1):
                misses.append(Miss(q.id, q.question, q.gold, rank, pages[:MISS_TOP_PAGES]))
        metrics[name] = RetrievalMetrics.from_ranks(ranks)
    return RetrievalReport(metrics, QuestionCounts.of(questions), misses, ablation_warnings(metrics))


def ablation_warnings(metrics: Mapping[str, RetrievalMetrics], *, margin: float = WARNING_MARGIN) -> list[str]:
    """Advice when a simpler retriever beats the hybrid's MRR@10 on these questions by more than
    ``margin``: another corpus may want other weights (`kb tune`)."""
    if HYBRID not in metrics:
        return []
    hybrid = metrics[HYBRID].mrr_at_10
    beaten = [f"{name} {m.mrr_at_10:.3f}" for name, m in metrics.items()
              if name != HYBRID and m.mrr_at_10 > hybrid + margin]
    if not beaten:
        return []
    return [f"on these questions the hybrid (MRR@10 {hybrid:.3f}) is beaten by {', '.join(beaten)}: "
            "the default weights may not suit this corpus; run `kb tune` with the same questions"]
