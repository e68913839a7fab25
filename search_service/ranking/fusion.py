"""Fusion: how the signals' scores become section scores (to pick each page's best sections) and
page scores (to rank the pages).

:class:`WeightedFusion` is the hybrid's: a weighted sum of min-max-normalised signals.
:class:`ReciprocalRankFusion` is the naive reference `kb eval` compares it with.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from search_service.ranking.config import FusionWeights, RankingConfig
from search_service.ranking.sections import RankedSections
from search_service.ranking.signals import SignalScores

logger = logging.getLogger(__name__)

# Scores closer together than this are equal (float noise), so min-max normalisation does not divide by ~0.
EQUAL_SCORES = 1e-9


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] (float32); when all values are equal, 1 where positive, else 0."""
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low < EQUAL_SCORES:
        return np.where(values > 0, 1.0, 0.0).astype(np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


class Fusion(Protocol):
    """Turns one query's signal scores into section scores and page scores."""

    def section_scores(self, scores: SignalScores, candidates: list[int]) -> np.ndarray:
        """A score for each candidate chunk, aligned with ``candidates``."""
        ...

    def page_scores(self, scores: SignalScores, sections: RankedSections) -> dict[str, float]:
        """A score for each page, given its candidate sections ranked by :meth:`section_scores`."""
        ...


@dataclass(frozen=True)
class WeightedFusion:
    """The hybrid's fusion. Sections: an equal blend of the normalised section signals in use.
    Pages: the fusion weights times three min-max-normalised signals (those that scored anything):
    the best section's dense similarity, the best section's BM25 score (each plus
    ``second_section_weight`` times the second best) and the whole page's BM25 score."""

    weights: FusionWeights
    second_section_weight: float
    page_of: Sequence[str]  # the page of each chunk index

    @classmethod
    def from_config(cls, config: RankingConfig, page_of: Sequence[str]) -> WeightedFusion:
        """The fusion with the configuration's weights."""
        return cls(config.fusion_weights, config.second_section_weight, page_of)

    def section_scores(self, scores: SignalScores, candidates: list[int]) -> np.ndarray:
        """Equal shares of each section signal the retriever uses, normalised over the candidates."""
        used = []
        if scores.dense is not None:
            floor = min(scores.dense.values()) if scores.dense else 0.0  # sections the dense search did not return
            used.append(np.array([scores.dense.get(i, floor) for i in candidates], dtype=np.float32))
        if scores.section_keywords is not None:
            used.append(np.array([scores.section_keywords.get(i, 0.0) for i in candidates], dtype=np.float32))
        fused = np.zeros(len(candidates), dtype=np.float32)
        for values in used:
            fused += (1.0 / len(used)) * normalise(values)
        return fused

    def page_scores(self, scores: SignalScores, sections: RankedSections) -> dict[str, float]:
        """The weighted sum of the page signals that scored anything, each min-max normalised."""
        page_keywords = scores.page_keywords or {}
        paths = sorted(set(sections.matches) | set(page_keywords))
        dense_weight, section_keyword_weight, page_keyword_weight = self.weights
        signals: list[tuple[float, list[float]]] = []
        if scores.dense:
            dense = self._best_two(scores.dense)
            floor = min(dense.values())  # pages without a dense candidate
            signals.append((dense_weight, [dense.get(path, floor) for path in paths]))
        if scores.section_keywords:
            peak = max(scores.section_keywords.values())
            keyword = self._best_two({i: v / peak for i, v in scores.section_keywords.items()})
            signals.append((section_keyword_weight, [keyword.get(path, 0.0) for path in paths]))
        if page_keywords:
            peak = max(page_keywords.values()) or 1.0
            signals.append((page_keyword_weight, [page_keywords.get(path, 0.0) / peak for path in paths]))
        fused = np.zeros(len(paths), dtype=np.float32)
        for weight, values in signals:
            fused += weight * normalise(np.array(values, dtype=np.float32))
        return dict(zip(paths, fused.tolist(), strict=True))

    def _best_two(self, scores: dict[int, float]) -> dict[str, float]:
        """Per page: its best section's score plus the second-best's share."""
        top: dict[str, list[float]] = defaultdict(list)
        for i, value in sorted(scores.items(), key=lambda item: -item[1]):
            if len(top[self.page_of[i]]) < 2:
                top[self.page_of[i]].append(value)
        return {path: v[0] + self.second_section_weight * (v[1] if len(v) > 1 else 0.0) for path, v in top.items()}


@dataclass(frozen=True)
class ReciprocalRankFusion:
    """The naive reference: each section scores the sum over the section signals of 1 / (k + its
    rank), and each page its best section's score."""

    k: int

    def section_scores(self, scores: SignalScores, candidates: list[int]) -> np.ndarray:
        """Sum over the section rankings of 1 / (k + rank) (rank 1 = best; absent from one = no share)."""
        fused = dict.fromkeys(candidates, 0.0)
        for ranking in (scores.dense, scores.section_keywords):
            if ranking is None:
                continue
            for rank, i in enumerate(sorted(ranking, key=lambda i: -ranking[i]), start=1):
                fused[i] += 1.0 / (self.k + rank)
        return np.array([fused[i] for i in candidates], dtype=np.float32)

    def page_scores(self, scores: SignalScores, sections: RankedSections) -> dict[str, float]:
        """Each page scores its best section's reciprocal-rank score."""
        return {path: matches[0].score for path, matches in sections.matches.items()}
