"""What the answerer needs to know from the settings, as one small typed value."""

from __future__ import annotations

from dataclasses import dataclass

from search_service.ranking.retriever import HybridRetriever
from search_service.settings import Settings


def abstain_threshold(settings: Settings, retriever: HybridRetriever) -> float:
    """``KB_ABSTAIN_THRESHOLD`` when set, else the corpus's calibrated one (`kb tune --save`), else the default."""
    tuned = settings.for_corpus(retriever.index.manifest.get("tuning")).abstain_threshold
    return settings.abstain_threshold if tuned is None else tuned


@dataclass(frozen=True)
class AnswerSettings:
    """The answerer's configuration: when to abstain and where citations link to."""

    abstain_threshold: float  # evidence below this abstains (see coverage.py)
    site_url: str = "/"  # URL prefix of the portal, for citation links

    @classmethod
    def from_settings(cls, settings: Settings, retriever: HybridRetriever) -> AnswerSettings:
        """The settings in force for this retriever's corpus (its tuned threshold unless one is set)."""
        return cls(abstain_threshold=abstain_threshold(settings, retriever), site_url=settings.site_url)
