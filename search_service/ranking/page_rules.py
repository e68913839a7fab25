"""Rules applied to page scores after fusion: boosts, and deprecated pages giving way to their successors."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from search_service.content import PageMeta, Status

logger = logging.getLogger(__name__)


def author_boosts(pages: Mapping[str, PageMeta]) -> dict[str, float]:
    """The front matter's ``search: {boost: N}`` of each page that sets one."""
    return {path: meta.search.boost for path, meta in pages.items() if meta.search.boost != 1.0}


def apply_boosts(page_scores: dict[str, float], *boosts: Mapping[str, float]) -> dict[str, float]:
    """The page scores multiplied by each boost of a page that is ranked, in the order given.

    Min-max normalisation gives the weakest candidate 0, which no boost lifts; every other page moves.
    """
    boosted = dict(page_scores)
    for factors in boosts:
        for path, factor in factors.items():
            if path in boosted:
                boosted[path] *= factor
    return boosted


def demote_deprecated(page_scores: dict[str, float], pages: Mapping[str, PageMeta], visible_pages: frozenset[str],
                      factor: float) -> tuple[dict[str, float], dict[str, str]]:
    """Deprecated pages keep ``factor`` of their score; a visible successor that scored less takes
    the deprecated page's original score.

    Returns:
        The new scores, and for each promoted successor the deprecated page it replaces.
    """
    scores = dict(page_scores)
    promoted: dict[str, str] = {}
    for path in list(scores):
        meta = pages[path]
        if meta.status is not Status.deprecated:
            continue
        original = scores[path]
        scores[path] = original * factor
        successor = meta.superseded_by
        if successor and successor in visible_pages and scores.get(successor, -1.0) < original:
            scores[successor] = original
            promoted[successor] = path
    return scores, promoted
