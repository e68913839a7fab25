"""Citations: one number per quoted section, the citation records, and the check of ``[n]`` markers."""

from __future__ import annotations

import re

from search_service.answering.results import Citation
from search_service.answering.units import CITE_RE, ITEM_RE, Unit
from search_service.indexing.chunking import Chunk
from search_service.ranking.retriever import chunk_url, make_snippet


def make_citations(sources: list[Chunk], used: list[int], terms: list[str], site_url: str) -> list[Citation]:
    """Citations numbered from 1 for the sources at the ``used`` indices, in that order."""
    return [
        Citation(n=n, title=sources[i].title, section=sources[i].section, url=chunk_url(sources[i], site_url),
                 snippet=make_snippet(sources[i].text, terms), path=sources[i].page_path)
        for n, i in enumerate(used, start=1)
    ]


def number_sections(chosen: list[Unit], sources: list[Chunk]) -> tuple[list[int], list[int]]:
    """One citation number per section (page + anchor), numbered in order of first use.

    Returns each chosen unit's number, and for each number the index of the first source of that
    section (the one its citation describes).
    """
    keys = [(chunk.page_path, chunk.anchor) for chunk in sources]
    order = list(dict.fromkeys(keys[u.source] for u in chosen))
    number = {key: n for n, key in enumerate(order, start=1)}
    used = [keys.index(key) for key in order]
    return [number[keys[u.source]] for u in chosen], used


def render_answer(chosen: list[Unit], numbers: list[int]) -> str:
    """The answer text: each unit followed by its citation; list items and rows one per line."""
    lines = []
    for unit, n in zip(chosen, numbers, strict=True):
        text = f"- {unit.text}" if unit.item and not ITEM_RE.match(unit.text) else unit.text
        lines.append(f"{text} [{n}]")
    joiner = "\n" if any(u.item for u in chosen) else " "
    return joiner.join(lines)


def check_citations(text: str, allowed: int) -> tuple[str, list[int], list[int]]:
    """Keep only ``[n]`` with 1 <= n <= allowed. Returns (clean text, valid numbers used, invalid numbers)."""
    valid: list[int] = []
    invalid: list[int] = []

    def fix(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        good = [n for n in numbers if 1 <= n <= allowed]
        invalid.extend(n for n in numbers if not 1 <= n <= allowed)
        valid.extend(n for n in good if n not in valid)
        return "".join(f"[{n}]" for n in good)

    cleaned = CITE_RE.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    return cleaned, valid, invalid
