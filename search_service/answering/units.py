"""Units of evidence: the sentences, list items and table rows of a section, in reading order."""

from __future__ import annotations

import re
from dataclasses import dataclass

from search_service.answering.weights import LEAD_MAX_WORDS, MIN_UNIT_WORDS, POINTER_MAX_WORDS, TITLE_MAX_WORDS
from search_service.indexing.chunking import Chunk

CITE_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
NUMBERED_RE = re.compile(r"^\s*(\d+)[.)]\s+")
ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# Cross-references such as "See the pilot stagnation FAQ." point elsewhere; they answer nothing.
POINTER_RE = re.compile(r"^(see|read|follow|use|check)\b.{0,80}\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a section."""

    text: str
    source: int  # index into the answer's source list
    position: int  # order within the source
    numbered: bool  # a numbered list item (a step)
    item: bool  # a list item or table row: quoted on its own line
    block: int = 0  # which block (paragraph, list, table) of the section it came from


def _is_list(lines: list[str]) -> bool:
    """A block whose lines are all list items or their indented continuations, starting with an item."""
    return bool(lines) and bool(ITEM_RE.match(lines[0])) and all(
        ITEM_RE.match(line) or line.startswith((" ", "\t")) for line in lines if line.strip())


def _list_items(lines: list[str]) -> list[str]:
    """The items of a list block, each with its continuation lines joined on."""
    items: list[str] = []
    for line in lines:
        if ITEM_RE.match(line) and not line.startswith((" ", "\t")):
            items.append(line.strip())
        elif items:
            items[-1] += " " + line.strip()
    return items


def _is_pointer(sentence: str) -> bool:
    return len(sentence.split()) < POINTER_MAX_WORDS and bool(POINTER_RE.match(sentence.strip()))


def _long_enough(text: str) -> bool:
    return len(text.split()) >= MIN_UNIT_WORDS


def split_units(chunk: Chunk, source: int) -> list[Unit]:
    """Sentences, list items and table rows of a section, in reading order; fragments and
    cross-references are left out."""
    units: list[Unit] = []
    for block_no, block in enumerate(chunk.blocks or [chunk.text]):
        # Quoted text must not contain anything that reads as one of our citation markers.
        lines = CITE_RE.sub(lambda m: f"({m.group(1)})", block).splitlines()
        if _is_list(lines):
            items = _list_items(lines)
            units += [Unit(item, source, len(units) + i, bool(NUMBERED_RE.match(item)), True, block_no)
                      for i, item in enumerate(items) if _long_enough(item)]
        elif " | " in block:
            rows = lines[1:]  # the rows after the header
            units += [Unit(row.strip(), source, len(units) + i, False, True, block_no)
                      for i, row in enumerate(rows) if _long_enough(row)]
        else:
            for sentence in SENTENCE_RE.split(" ".join(line.strip() for line in lines)):
                if _long_enough(sentence) and not _is_pointer(sentence):
                    units.append(Unit(sentence.strip(), source, len(units), False, False, block_no))
    return units


def lead(step: str, max_words: int = LEAD_MAX_WORDS) -> str:
    """A step's number and first sentence (its lead phrase); a step that opens with a short title
    ("Intake.") keeps its next sentence too, which says what the step is."""
    marker = ITEM_RE.match(step)
    prefix, rest = (step[: marker.end()], step[marker.end():]) if marker else ("", step)
    sentences = SENTENCE_RE.split(rest, maxsplit=2)
    words = sentences[0].split()
    if len(words) < TITLE_MAX_WORDS and len(sentences) > 1:
        words += sentences[1].split()
    return prefix + " ".join(words[:max_words]) + (" …" if len(words) > max_words else "")
