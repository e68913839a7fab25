"""The ranking configuration: every weight, depth and count the retriever uses, named once.

This module imports nothing heavy (no FAISS, no numpy), so ``search_service.settings`` takes
its defaults from here. ``Settings.ranking_config`` is the one place that turns the settings
and a corpus's tuning file into a :class:`RankingConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Weights of the dense, section-keyword and page-keyword signals in a page's fused score.
FusionWeights = tuple[float, float, float]


@dataclass(frozen=True)
class RankingConfig:
    """How the retriever ranks pages (see docs/search-quality.md, "Ranking").

    A page's score is a weighted sum of three per-query min-max-normalised signals: its best
    section's dense similarity, its best section's BM25 score and the whole page's BM25 score;
    its second-best section adds a little. The best ``rerank_depth`` pages are then re-ordered by
    their normalised fused score plus ``rerank_weight`` times their normalised late-interaction
    score, within their original score range.
    """

    # The setting of `kb tune`'s grid that beat the naive baseline by the widest margin on three labelled corpora.
    fusion_weights: FusionWeights = (0.4, 0.1, 0.1)
    # Chosen with the fusion weights: a page's second-best section adds this share (evidence spread over sections).
    second_section_weight: float = 0.1
    # Set by hand, not tuned: sections each section signal hands to fusion, far more than the pages shown.
    candidates: int = 200
    # Set by hand, not tuned: a deprecated page keeps 60% of its score, so live pages that match as well rank above.
    deprecated_factor: float = 0.6
    # Set by hand: best sections kept per page (the hit's link, then its "more sections").
    sections_per_page: int = 3
    # Set by hand (0 turns the stage off); its gain, fusion -> hybrid, is measured by `kb eval` on three corpora.
    rerank_depth: int = 30
    # Set by hand with the depth: best sections per page compared token by token (about 3 ms a question in all).
    rerank_sections: int = 3
    # The re-ranking weight of the same `kb tune` grid setting as the fusion weights (grid: 0, 0.3, 0.6).
    rerank_weight: float = 0.3
    # The constant of reciprocal rank fusion in the naive baseline, as in the literature (Cormack et al. 2009).
    rrf_k: int = 60

    def with_tuning(self, *, fusion_weights: FusionWeights, rerank_weight: float, rerank_depth: int) -> RankingConfig:
        """This configuration with the tunable parts (those `kb tune` chooses) replaced."""
        return dataclasses.replace(self, fusion_weights=fusion_weights, rerank_weight=rerank_weight,
                                   rerank_depth=rerank_depth)


DEFAULT_RANKING = RankingConfig()
