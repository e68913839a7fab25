"""Filters and access control, applied before ranking: what a caller may see and asked to see.

A chunk a viewer may not see never reaches a signal: the visible chunk indices computed here
restrict the FAISS search itself (an ID selector) and the BM25 candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from search_service.content import PageMeta
from search_service.ranking.sections import PageSections

logger = logging.getLogger(__name__)

# Set by hand: distinct (filters, viewer groups) combinations remembered before the cache starts afresh.
VISIBILITY_CACHE_SIZE = 256


@dataclass(frozen=True)
class Filters:
    """Restrict results to pages of these types, tags and audiences (any of each list)."""

    type: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()

    def allows(self, meta: PageMeta) -> bool:
        """Whether a page passes every filter that is set."""
        if self.type and meta.type not in self.type:
            return False
        if self.tag and not set(self.tag) & set(meta.tags):
            return False
        return not (self.audience and not set(self.audience) & set(meta.audience))


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the groups they belong to. Anonymous viewers see public pages only."""

    groups: frozenset[str] = frozenset()
    all_access: bool = False

    def may_see(self, meta: PageMeta) -> bool:
        """Whether this viewer may see a page: public, or shared with one of the viewer's groups."""
        return self.all_access or meta.access is None or bool(self.groups & set(meta.access))


ANONYMOUS = Viewer()


@dataclass(frozen=True)
class Visible:
    """The chunks (sorted indices) and pages a search may rank."""

    chunk_ids: np.ndarray
    pages: frozenset[str]


class Visibility:
    """Which chunks each (filters, viewer) combination may rank, computed once per combination."""

    def __init__(self, pages: Mapping[str, PageMeta], sections: PageSections) -> None:
        self.pages = pages
        self.sections = sections
        self._cache: dict[tuple[Filters, bool, frozenset[str]], Visible] = {}
        self._access: dict[tuple[bool, frozenset[str]], frozenset[str]] = {}

    def accessible(self, viewer: Viewer) -> frozenset[str]:
        """The pages this viewer may see, whatever the filters: the corpus its statistics come from."""
        key = (viewer.all_access, frozenset(viewer.groups))
        cached = self._access.get(key)
        if cached is None:
            cached = frozenset(path for path, meta in self.pages.items() if viewer.may_see(meta))
            if len(self._access) > VISIBILITY_CACHE_SIZE:
                self._access.clear()
            self._access[key] = cached
        return cached

    def visible(self, filters: Filters, viewer: Viewer) -> Visible:
        """The chunks and pages this viewer may see and the filters allow."""
        key = (filters, viewer.all_access, frozenset(viewer.groups))
        cached = self._cache.get(key)
        if cached is None:
            allowed = {path for path, meta in self.pages.items() if viewer.may_see(meta) and filters.allows(meta)}
            ids = np.array(sorted(i for path in allowed for i in self.sections.ids(path)), dtype=np.int64)
            cached = Visible(ids, frozenset(self.sections.page_of[i] for i in ids.tolist()))
            if len(self._cache) > VISIBILITY_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = cached
        return cached
