"""Late-interaction re-ranking of the best pages (MaxSim over word-piece vectors, as in ColBERT).

The best ``depth`` pages are re-ordered by their normalised fused score plus ``weight`` times
their normalised MaxSim score, mapped back onto their original score range: a re-ranked page
never falls below a page that was not re-ranked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from search_service.indexing.embedding import QueryEncoding
from search_service.indexing.tokens import TokenStore
from search_service.ranking.config import RankingConfig
from search_service.ranking.fusion import normalise
from search_service.ranking.sections import PageSections, RankedSections, is_page_profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LateInteractionReranker:
    """Re-orders the top pages by the MaxSim score of their best sections against the query's word pieces."""

    tokens: TokenStore
    sections: PageSections
    depth: int  # pages re-ranked
    sections_per_page: int  # best sections of each page compared token by token
    weight: float  # of the normalised MaxSim score against the normalised fused score

    @classmethod
    def from_config(cls, tokens: TokenStore, sections: PageSections, config: RankingConfig) -> LateInteractionReranker:
        """The re-ranker with the configuration's depth, sections per page and weight."""
        return cls(tokens, sections, config.rerank_depth, config.rerank_sections, config.rerank_weight)

    def rerank(self, query: QueryEncoding, page_scores: dict[str, float], ranked: RankedSections) -> dict[str, float]:
        """The page scores with the top ``depth`` pages re-ordered (the others unchanged)."""
        top = sorted(page_scores, key=lambda path: (-page_scores[path], path))[: self.depth]
        if len(top) < 2:
            return page_scores
        maxsim = np.array(self._page_maxsim(query, top, ranked), dtype=np.float32)
        fused = np.array([page_scores[path] for path in top], dtype=np.float32)
        combined = (normalise(fused) + self.weight * normalise(maxsim)) / (1.0 + self.weight)
        low, high = float(fused.min()), float(fused.max())
        reordered = dict(page_scores)
        for path, value in zip(top, combined.tolist(), strict=True):
            reordered[path] = low + (high - low) * value
        return reordered

    def _page_maxsim(self, query: QueryEncoding, pages: list[str], ranked: RankedSections) -> list[float]:
        """Each page's best MaxSim score over its best sections (0 for a page without any)."""
        chosen: list[list[int]] = []
        for path in pages:
            ids = [i for i in ranked.ids.get(path, []) if not is_page_profile(self.sections.chunks[i])]
            if not ids:  # ranked by page-level keywords alone: use the page's opening sections
                ids = self.sections.body_ids(path)
            chosen.append(ids[: self.sections_per_page])
        scores = self.tokens.maxsim(query, [i for ids in chosen for i in ids])
        best, position = [], 0
        for ids in chosen:
            best.append(float(scores[position: position + len(ids)].max()) if ids else 0.0)
            position += len(ids)
        return best
