"""Heading-aware chunking: each chunk knows its page, heading path and MkDocs anchor.

Headings, anchors and blocks come from the one Markdown parse (:mod:`search_service.content.markdown`).
Long sections split between blocks (paragraphs, whole lists, whole tables, whole code blocks,
whole admonitions), never inside one; every piece keeps the heading path as context.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

from search_service.content import Page
from search_service.content.markdown import Block, Heading, iter_headings, parse_markdown

# iter_headings lives in content.markdown; it is re-exported here for code that imported it from chunking.
__all__ = ["CHUNKER_VERSION", "MAX_WORDS", "Chunk", "chunk_page", "iter_headings", "page_profile"]

logger = logging.getLogger(__name__)

# Bumped whenever chunk texts change, so the next build re-chunks every page.
# 2: blocks come from markdown-it (pipe-less tables, nested fences, reference definitions dropped).
CHUNKER_VERSION = "2"
# Words per chunk before a section splits between blocks; 80 to 240 were tried and none did better
# (docs/search-quality.md).
MAX_WORDS = 160
# The kind of a page's profile chunk (title, summary, tags, section names), which is not a section of the text.
PROFILE_KIND = "profile"

_LIST_ITEM_RE = re.compile(r"^ {0,3}(?:[-*+]|\d+[.)])[ \t]+")


@dataclass
class Chunk:
    """A passage of one page under one heading path."""

    page_path: str
    title: str
    heading_path: list[str]
    anchor: str
    text: str
    ordinal: int = 0
    part: int = 0
    kind: str = "text"  # text | list | steps | table | mixed | ..., or PROFILE_KIND
    blocks: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page_path}#{self.anchor}~{self.part}"

    @property
    def is_profile(self) -> bool:
        """Whether this is its page's profile rather than a section of the page's text."""
        return self.kind == PROFILE_KIND

    @property
    def section(self) -> str:
        return " > ".join(self.heading_path)

    def embed_text(self) -> str:
        """The text the embedding model and BM25 see: page title and heading path as context."""
        context = self.title if not self.heading_path else f"{self.title}: {self.section}"
        return f"{context}\n{self.text}"

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text().encode("utf-8")).hexdigest()


def _words(text: str) -> int:
    return len(text.split())


def _split_list(text: str, max_words: int) -> list[str]:
    """Split an over-long list between its top-level items."""
    items: list[list[str]] = []
    for line in text.splitlines():
        if (_LIST_ITEM_RE.match(line) and not line.startswith((" ", "\t"))) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    pieces: list[str] = []
    current: list[str] = []
    for item in items:
        item_text = "\n".join(item)
        if current and _words("\n".join(current)) + _words(item_text) > max_words:
            pieces.append("\n".join(current))
            current = []
        current.append(item_text)
    if current:
        pieces.append("\n".join(current))
    return pieces


def _block_kind(kinds: list[str], text: str) -> str:
    if len(set(kinds)) > 1:
        return "mixed"
    kind = kinds[0] if kinds else "text"
    if kind == "list" and re.match(r"^\s*\d+[.)]\s", text):
        return "steps"
    return kind


@dataclass(frozen=True)
class _Section:
    """The blocks under one heading: its path (H1 left out) and anchor ("" above the first H2)."""

    path: tuple[str, ...]
    anchor: str
    blocks: tuple[Block, ...]


def _sections(body: str) -> list[_Section]:
    """A body cut at its headings; the part above the first heading has an empty path."""
    document = parse_markdown(body)
    headings = document.headings
    starts = [heading.line for heading in headings] + [document.line_count]
    sections = [_Section((), "", tuple(b for b in document.blocks if b.start < starts[0]))]
    stack: list[Heading] = []
    for i, heading in enumerate(headings):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        # A page's H1 is its title: it is not part of the section path, and links to the top.
        path = tuple(h.text for h in stack if h.level > 1)
        anchor = heading.anchor if heading.level > 1 else ""
        blocks = tuple(b for b in document.blocks if heading.line < b.start < starts[i + 1])
        sections.append(_Section(path, anchor, blocks))
    return sections


def _pieces(blocks: tuple[Block, ...], max_words: int) -> list[list[tuple[str, str]]]:
    """(kind, text) blocks packed into pieces of at most ``max_words``; an over-long list splits by item."""
    pieces: list[list[tuple[str, str]]] = [[]]
    for block in blocks:
        if not block.text.strip():
            continue
        kind, text = str(block.kind), block.text
        parts = _split_list(text, max_words) if kind == "list" and _words(text) > max_words else [text]
        for part in parts:
            current_words = sum(_words(t) for _, t in pieces[-1])
            if pieces[-1] and current_words + _words(part) > max_words:
                pieces.append([])
            pieces[-1].append((kind, part))
    return pieces if pieces[0] else []


def chunk_page(page: Page, *, max_words: int = MAX_WORDS) -> list[Chunk]:
    """Split a page into heading-aware chunks in reading order."""
    chunks: list[Chunk] = []
    for section in _sections(page.body):
        for part_no, piece in enumerate(_pieces(section.blocks, max_words)):
            text = "\n\n".join(t for _, t in piece)
            chunks.append(
                Chunk(
                    page_path=page.path,
                    title=page.meta.title,
                    heading_path=list(section.path),
                    anchor=section.anchor,
                    text=text,
                    part=part_no,
                    kind=_block_kind([k for k, _ in piece], text),
                    blocks=[t for _, t in piece],
                )
            )
    for ordinal, chunk in enumerate(chunks):
        chunk.ordinal = ordinal
    return chunks


def page_profile(page: Page, chunks: list[Chunk]) -> Chunk:
    """A page-level chunk (title, summary, tags, section names) so whole-page questions match too."""
    sections = list(dict.fromkeys(c.heading_path[0] for c in chunks if c.heading_path))
    lines = [page.meta.summary] if page.meta.summary else []
    if page.meta.tags:
        lines.append("Topics: " + ", ".join(t.replace("-", " ") for t in page.meta.tags))
    if sections:
        lines.append("Sections: " + "; ".join(sections))
    if not lines and chunks:
        lines.append(chunks[0].text)
    return Chunk(page_path=page.path, title=page.meta.title, heading_path=[], anchor="",
                 text="\n".join(lines), part=-1, kind=PROFILE_KIND, ordinal=-1)
