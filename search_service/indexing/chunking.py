"""Heading-aware chunking: each chunk knows its page, heading path and MkDocs anchor.

Anchors follow Python-Markdown's ``toc`` extension, which MkDocs uses: the heading's text with
inline markup removed, slugified, and made unique within the page (``id``, ``id_1``, ...).
Long sections split between blocks (paragraphs, whole lists, whole tables, whole code blocks,
whole admonitions), never inside one; every piece keeps the heading path as context.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from markdown.extensions.toc import slugify, unique

from search_service.content import Page

CHUNKER_VERSION = "1"
MAX_WORDS = 160

_ATX_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATTR_ID_RE = re.compile(r"\s*\{[^}]*#([\w-]+)[^}]*\}\s*$")
_ATTR_RE = re.compile(r"\s*\{:?[^}]*\}\s*$")
_LIST_RE = re.compile(r"^ {0,3}(?:[-*+]|\d+[.)])[ \t]+")
_TABLE_RE = re.compile(r"^ {0,3}\|")
_ADMONITION_RE = re.compile(r"^ {0,3}(?:!!!|\?\?\?\+?)[ \t]+")


@dataclass(frozen=True)
class Heading:
    line: int  # 0-based line index within the body
    level: int
    text: str  # plain text, inline markup removed
    anchor: str


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
    kind: str = "text"  # text | list | steps | table | mixed
    blocks: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page_path}#{self.anchor}~{self.part}"

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


_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_REFLINK_RE = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_CODE_RE = re.compile(r"`+([^`]*)`+")
_TAG_RE = re.compile(r"<[^>]+>")
_STRONG_RE = re.compile(r"(\*\*|__)(.+?)\1")
_EMPHASIS_RE = re.compile(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])")


def inline_to_text(markdown_text: str) -> str:
    """Plain text of inline Markdown, as the toc extension sees a heading."""
    text = _ATTR_RE.sub("", markdown_text)
    if "[" in text:
        text = _IMAGE_RE.sub(r"\1", text)  # images -> alt text
        text = _LINK_RE.sub(r"\1", text)  # links -> text
        text = _REFLINK_RE.sub(r"\1", text)  # reference links
    if "`" in text:
        text = _CODE_RE.sub(r"\1", text)
    if "<" in text:
        text = _TAG_RE.sub("", text)  # raw HTML tags
    if "*" in text or "_" in text:
        text = _STRONG_RE.sub(r"\2", text)
        text = _EMPHASIS_RE.sub(r"\2", text)
    return html.unescape(text).strip() if "&" in text else text.strip()


def iter_headings(body: str) -> Iterator[Heading]:
    """Headings of a Markdown body (ATX and setext), outside code blocks, with their anchors."""
    ids: set[str] = set()
    counters: dict[str, int] = {}
    lines = body.splitlines()
    fence: str | None = None
    for index, line in enumerate(lines):
        fence_match = _FENCE_RE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue
        level, raw = 0, ""
        match = _ATX_RE.match(line)
        if match:
            level, raw = len(match.group(1)), match.group(2)
        elif index + 1 < len(lines) and line.strip() and not line.startswith("    "):
            setext = _SETEXT_RE.match(lines[index + 1])
            previous_blank = index == 0 or not lines[index - 1].strip()
            if setext and previous_blank and not _LIST_RE.match(line) and not _TABLE_RE.match(line):
                level, raw = (1 if setext.group(1)[0] == "=" else 2), line.strip()
        if not level:
            continue
        custom = _ATTR_ID_RE.search(raw)
        text = inline_to_text(raw)
        anchor = custom.group(1) if custom else slugify(text, "-")
        anchor = unique(anchor, ids, counters)
        yield Heading(line=index, level=level, text=text, anchor=anchor)


def _split_blocks(lines: list[str]) -> list[tuple[str, str]]:
    """Group section lines into (kind, text) blocks that must not be cut."""
    blocks: list[tuple[str, list[str]]] = []
    kind: str | None = None
    fence: str | None = None
    current: list[str] = []

    def flush() -> None:
        nonlocal current, kind
        while current and not current[-1].strip():
            current.pop()
        if current:
            blocks.append((kind or "text", current))
        current, kind = [], None

    for line in lines:
        if fence is not None:
            current.append(line)
            match = _FENCE_RE.match(line)
            if match and match.group(1)[0] == fence[0]:
                fence = None
                flush()
            continue
        match = _FENCE_RE.match(line)
        if match:
            flush()
            fence, kind = match.group(1), "code"
            current.append(line)
            continue
        if not line.strip():
            if kind in ("list", "admonition"):
                current.append(line)  # a blank line may sit between items; decided by the next line
            else:
                flush()
            continue
        indented = line.startswith("\t") or len(line) - len(line.lstrip(" ")) >= 2
        if kind == "list" and (_LIST_RE.match(line) or indented):
            current.append(line)
            continue
        if kind == "admonition" and indented:
            current.append(line)
            continue
        if kind == "table" and _TABLE_RE.match(line):
            current.append(line)
            continue
        if _LIST_RE.match(line):
            if kind != "list":
                flush()
                kind = "list"
            current.append(line)
            continue
        if _TABLE_RE.match(line):
            flush()
            kind = "table"
            current.append(line)
            continue
        if _ADMONITION_RE.match(line):
            flush()
            kind = "admonition"
            current.append(line)
            continue
        if kind in ("list", "admonition", "table"):
            if current and not current[-1].strip():
                flush()
            elif kind == "list":
                current.append(line)  # lazy continuation of a list item
                continue
            else:
                flush()
        kind = kind or "text"
        current.append(line)
    flush()
    return [(k, "\n".join(v)) for k, v in blocks]


def clean_block(kind: str, text: str) -> str:
    """Markdown block to readable plain text (list markers and numbering kept)."""
    out = []
    for line in text.splitlines():
        if kind == "code" and _FENCE_RE.match(line):
            continue
        if kind == "table":
            if re.match(r"^\s*\|?[\s:|-]+\|?\s*$", line) and "-" in line:
                continue  # the separator row
            cells = [inline_to_text(cell) for cell in line.strip().strip("|").split("|")]
            line = " | ".join(cell for cell in cells)
        elif kind == "admonition" and _ADMONITION_RE.match(line):
            title = re.search(r'"([^"]*)"', line)
            line = title.group(1) if title else ""
        else:
            line = re.sub(r"^(\s*)[-*+] \[[ xX]\] ", r"\1- ", line)
            line = inline_to_text(line) if kind != "code" else line
        if line.strip():
            out.append(line.rstrip())
    return "\n".join(out)


def _words(text: str) -> int:
    return len(text.split())


def _split_list(text: str, max_words: int) -> list[str]:
    """Split an over-long list between its top-level items."""
    items: list[list[str]] = []
    for line in text.splitlines():
        if (_LIST_RE.match(line) and not line.startswith((" ", "\t"))) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    pieces, current = [], []
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


def chunk_page(page: Page, *, max_words: int = MAX_WORDS) -> list[Chunk]:
    """Split a page into heading-aware chunks in reading order."""
    lines = page.body.splitlines()
    headings = list(iter_headings(page.body))
    sections: list[tuple[list[str], str, list[str]]] = []  # (heading path, anchor, lines)
    stack: list[Heading] = []
    starts = [h.line for h in headings] + [len(lines)]
    sections.append(([], "", lines[: starts[0]]))
    for i, heading in enumerate(headings):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        # A page's H1 is its title: it is not part of the section path, and links to the top.
        path = [h.text for h in stack if h.level > 1]
        anchor = heading.anchor if heading.level > 1 else ""
        end = starts[i + 1]
        sections.append((path, anchor, lines[heading.line + 1: end]))

    chunks: list[Chunk] = []
    for path, anchor, section_lines in sections:
        blocks = [(kind, clean_block(kind, text)) for kind, text in _split_blocks(section_lines)]
        blocks = [(kind, text) for kind, text in blocks if text.strip()]
        if not blocks:
            continue
        pieces: list[list[tuple[str, str]]] = [[]]
        for kind, text in blocks:
            parts = _split_list(text, max_words) if kind == "list" and _words(text) > max_words else [text]
            for part in parts:
                current_words = sum(_words(t) for _, t in pieces[-1])
                if pieces[-1] and current_words + _words(part) > max_words:
                    pieces.append([])
                pieces[-1].append((kind, part))
        for part_no, piece in enumerate(pieces):
            text = "\n\n".join(t for _, t in piece)
            chunks.append(
                Chunk(
                    page_path=page.path,
                    title=page.meta.title,
                    heading_path=list(path),
                    anchor=anchor,
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
                 text="\n".join(lines), part=-1, kind="profile", ordinal=-1)
