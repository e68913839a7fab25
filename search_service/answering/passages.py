"""The ranked-passages policy: the best-scoring units, from at most two pages, in reading order."""

from __future__ import annotations

import numpy as np

from search_service.answering.evidence import Evidence
from search_service.answering.sources import runner_up_is_close
from search_service.answering.units import Unit


def ranked_passages(evidence: Evidence) -> list[Unit]:
    """Policy (always applies): the units scoring close to the best one, then the whole of any short
    list they come from, then the runner-up page's best unit when the top two pages are close."""
    chosen = _best_units(evidence)
    chosen = _quote_whole_short_lists(evidence, chosen)
    chosen += _runner_up(evidence, chosen)
    sources = evidence.sources
    return sorted(chosen, key=lambda u: (evidence.page_rank(u.source), sources[u.source].ordinal, u.position))


def _best_units(evidence: Evidence) -> list[Unit]:
    """Units scoring within the keep floor of the best, best first, within the unit and page limits."""
    w, scores, sources = evidence.weights, evidence.scores, evidence.sources
    best = float(scores[evidence.lead])
    floor = max(best * w.keep_share, best - w.keep_gap)
    chosen: list[Unit] = []
    for i in np.argsort(-scores):
        unit = evidence.units[i]
        if scores[i] < floor:
            continue
        if len(chosen) >= w.max_units or len({sources[u.source].page_path for u in [*chosen, unit]}) > w.max_pages:
            continue
        chosen.append(unit)
    return chosen


def _quote_whole_short_lists(evidence: Evidence, chosen: list[Unit]) -> list[Unit]:
    """Two or more items of one short list were chosen: quote the whole list, it is the answer."""
    w = evidence.weights
    for key in {(u.source, u.block) for u in chosen if u.item}:
        members = [u for u in evidence.units if (u.source, u.block) == key]
        if sum((u.source, u.block) == key for u in chosen) >= w.whole_list_trigger and len(members) <= w.short_list_items:
            chosen = [u for u in chosen if (u.source, u.block) != key] + members
    return chosen


def _runner_up(evidence: Evidence, chosen: list[Unit]) -> list[Unit]:
    """When the retriever can barely tell the top two pages apart, the runner-up's best unit too."""
    if not runner_up_is_close(evidence.result, evidence.weights.close_share):
        return []
    runner_up = [i for i, u in enumerate(evidence.units) if evidence.page_rank(u.source) == 1]
    if not runner_up or any(evidence.page_rank(u.source) == 1 for u in chosen):
        return []
    return [evidence.units[max(runner_up, key=lambda i: evidence.scores[i])]]
