"""Ranking stage: signals, fusion and re-ranking assembled into a retriever; filters and access.

Where to change ranking: weights and depths in ``config.py`` (the only source of their defaults),
signals in ``signals.py``, fusion in ``fusion.py``, re-ranking in ``rerank.py``, boosts and
deprecated pages in ``page_rules.py``, the assembly in ``retriever.py``.

The names below are imported on first use, so that ``search_service.settings`` can read
``ranking.config`` without loading FAISS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search_service.ranking.config import DEFAULT_RANKING, FusionWeights, RankingConfig
    from search_service.ranking.filters import ANONYMOUS, Filters, Viewer
    from search_service.ranking.retriever import Hit, HybridRetriever, QueryEncoder, RankingParts, SearchResult
    from search_service.ranking.sections import SectionMatch, is_page_profile
    from search_service.ranking.snippets import chunk_url, make_snippet

_HOMES = {
    "DEFAULT_RANKING": "config", "FusionWeights": "config", "RankingConfig": "config",
    "ANONYMOUS": "filters", "Filters": "filters", "Viewer": "filters",
    "Hit": "retriever", "HybridRetriever": "retriever", "QueryEncoder": "retriever", "RankingParts": "retriever",
    "SearchResult": "retriever",
    "SectionMatch": "sections", "is_page_profile": "sections",
    "chunk_url": "snippets", "make_snippet": "snippets",
}

__all__ = [
    "ANONYMOUS",
    "DEFAULT_RANKING",
    "Filters",
    "FusionWeights",
    "Hit",
    "HybridRetriever",
    "QueryEncoder",
    "RankingConfig",
    "RankingParts",
    "SearchResult",
    "SectionMatch",
    "Viewer",
    "chunk_url",
    "is_page_profile",
    "make_snippet",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
