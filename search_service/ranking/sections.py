"""The sections of each page: which chunks belong to it, which is its profile, which matched best."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from search_service.indexing.chunking import Chunk

logger = logging.getLogger(__name__)


def is_page_profile(chunk: Chunk) -> bool:
    """Whether a chunk is its page's profile (title, summary, tags, section names), not a section of the text."""
    return chunk.is_profile


@dataclass
class SectionMatch:
    """One section of a page with its score for the query."""

    chunk: Chunk
    score: float


@dataclass
class RankedSections:
    """The candidate sections of each page, best first, as matches and as chunk indices."""

    matches: dict[str, list[SectionMatch]] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(default_factory=dict)


class PageSections:
    """The chunks of an index grouped by page, in reading order."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = chunks
        self.page_of = [chunk.page_path for chunk in chunks]
        self._by_page: dict[str, list[int]] = defaultdict(list)
        for i, path in enumerate(self.page_of):
            self._by_page[path].append(i)

    def ids(self, path: str) -> list[int]:
        """Indices of all of a page's chunks (its profile included)."""
        return self._by_page.get(path, [])

    def body_ids(self, path: str) -> list[int]:
        """Indices of a page's chunks in reading order: its sections, or its profile if it has none."""
        ids = self.ids(path)
        return [i for i in ids if not is_page_profile(self.chunks[i])] or ids

    def page_chunks(self, path: str) -> list[Chunk]:
        """The sections of one page in reading order (the page profile excluded)."""
        return [self.chunks[i] for i in self.body_ids(path) if not is_page_profile(self.chunks[i])]

    def rank(self, candidates: Sequence[int], scores: Sequence[float]) -> RankedSections:
        """Group scored candidate chunks by page, each page's best first (ties: index order)."""
        ranked = RankedSections(defaultdict(list), defaultdict(list))
        for i, score in sorted(zip(candidates, scores, strict=True), key=lambda pair: -pair[1]):
            path = self.page_of[i]
            ranked.matches[path].append(SectionMatch(self.chunks[i], float(score)))
            ranked.ids[path].append(i)
        return ranked

    def shown(self, matches: list[SectionMatch], path: str, limit: int) -> list[SectionMatch]:
        """The sections a hit shows: its best real sections, else its profile, else its opening section
        (a page ranked by page-level keywords alone has no matching chunk)."""
        real = [m for m in matches if not is_page_profile(m.chunk)]
        profile = [m for m in matches if is_page_profile(m.chunk)]
        return real[:limit] or profile[:1] or [SectionMatch(self.chunks[self.body_ids(path)[0]], 0.0)]
