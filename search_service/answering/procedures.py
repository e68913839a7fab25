"""Procedure policies: a "how do we ..." question is answered with the steps, in order.

Two shapes of procedure are recognised: a numbered list in one section, and steps written as
sibling headings ("### Step 1: Confirm the budget"), one section per step.
"""

from __future__ import annotations

import re

from search_service.answering.evidence import Evidence
from search_service.answering.units import Unit, lead, split_units
from search_service.answering.weights import MIN_HEADING_STEPS
from search_service.indexing.chunking import Chunk

STEP_HEADING_RE = re.compile(r"^step\s*(\d+)\s*[:.)\-–—]?\s*(.*)$", re.IGNORECASE)


def heading_steps(chunks: list[Chunk]) -> list[tuple[str, Chunk]]:
    """A procedure written as headings ("### Step 1: Confirm the budget"): (step title, first chunk)
    per step, in step order, from the group of sibling step headings with the most steps."""
    groups: dict[tuple[str, ...], dict[int, tuple[str, Chunk]]] = {}
    for chunk in chunks:
        match = STEP_HEADING_RE.match(chunk.heading_path[-1]) if len(chunk.heading_path) >= 2 else None
        if match:
            steps = groups.setdefault(tuple(chunk.heading_path[:-1]), {})
            steps.setdefault(int(match.group(1)), (match.group(2).strip() or chunk.heading_path[-1], chunk))
    best = max(groups.values(), key=len, default={})
    return [best[n] for n in sorted(best)] if len(best) >= MIN_HEADING_STEPS else []


def _lead_is_a_step_of_the_top_page(evidence: Evidence) -> bool:
    top = evidence.units[evidence.lead]
    return top.numbered and evidence.page_rank(top.source) == 0


def steps_as_headings(evidence: Evidence) -> list[Unit] | None:
    """Policy: the best page writes its procedure as step headings, and the best unit is not already
    one of its numbered steps: one numbered line per step, its title and lead sentence, each citing
    the step's own section."""
    if not evidence.procedural or _lead_is_a_step_of_the_top_page(evidence):
        return None
    steps = heading_steps(evidence.corpus.page_chunks(evidence.top_page))
    if not steps:
        return None
    chosen = []
    for n, (title, chunk) in enumerate(steps[: evidence.weights.max_steps], start=1):
        source = evidence.add_source(chunk)
        first = split_units(chunk, source)
        explanation = f": {lead(first[0].text)}" if first else ""
        chosen.append(Unit(f"{n}. {title}{explanation}", source, 0, True, True))
    return chosen


def numbered_procedure(evidence: Evidence) -> list[Unit] | None:
    """Policy: the best unit is a numbered step: the whole numbered procedure of its section, in
    order, each step shortened to its lead sentence."""
    top = evidence.units[evidence.lead]
    if not (evidence.procedural and top.numbered):
        return None
    anchor_chunk = evidence.sources[top.source]
    section = [c for c in evidence.corpus.page_chunks(anchor_chunk.page_path) if c.anchor == anchor_chunk.anchor]
    for chunk in section:
        evidence.add_source(chunk)
    sources = evidence.sources
    steps = [u for i, chunk in enumerate(sources) if chunk in section for u in split_units(chunk, i) if u.numbered]
    steps.sort(key=lambda u: (sources[u.source].part, u.position))
    return [Unit(lead(u.text), u.source, u.position, True, True) for u in steps[: evidence.weights.max_steps]]
