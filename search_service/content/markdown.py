"""One parse of a page body: headings with their MkDocs anchors, blocks, and links, from markdown-it.

Chunking, the linter and title inference all read this parse, so a list, a table or a code fence
is recognised the same way everywhere. The parser is CommonMark (markdown-it-py) with the GFM
``table`` rule, Python-Markdown style admonitions (``!!! note "Title"``, ``???`` / ``???+``) and
footnote definitions (``[^1]: ...``, kept in place).

Anchors follow Python-Markdown's ``toc`` extension, which MkDocs uses: the heading's text with
inline markup removed, slugified, and made unique within the page (``id``, ``id_1``, ...); an
``attr_list`` id (``## Heading {#custom-id}``) wins. Where CommonMark and Python-Markdown disagree,
this module follows Python-Markdown (what MkDocs renders): a setext heading is one line, and
lists that follow each other with only blank lines between them are one list.

Each block carries its plain-text rendering: Markdown syntax removed, list markers and numbering
kept, table rows as ``cell | cell``, code as written without its fences.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from markdown.extensions.toc import slugify, unique
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.rules_inline.link import link as _commonmark_link
from markdown_it.token import Token
from mdit_py_plugins.admon import admon_plugin
from mdit_py_plugins.footnote import footnote_plugin

logger = logging.getLogger(__name__)

# Parses kept in memory: the linter reads a page's parse several times, the indexer once more.
PARSE_CACHE_SIZE = 512

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # how markdown-it splits lines, so its line maps index these
# attr_list's id word: "#" after "{", "{:" or a space, up to a space, "=" or "}" (``{: #\6.0 }`` -> ``\6.0``)
_ATTR_ID_RE = re.compile(r"\s*\{:?(?:[^}]*\s)?#([^\s=}]+)[^}]*\}\s*$")
_ATTR_RE = re.compile(r"\s*\{:?[^}]*\}\s*$")
_TASK_RE = re.compile(r"^(\s*)[-*+] \[[ xX]\] ")
_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_REFLINK_RE = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_CODE_RE = re.compile(r"`+([^`]*)`+")
_TAG_RE = re.compile(r"<[^>]+>")
_STRONG_RE = re.compile(r"(\*\*|__)(.+?)\1")
_EMPHASIS_RE = re.compile(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])")


class BlockKind(StrEnum):
    """What a top-level block of a page body is."""

    text = "text"  # paragraphs, raw HTML, block quotes
    list = "list"
    table = "table"
    code = "code"
    admonition = "admonition"
    rule = "rule"  # a thematic break (---): no text


@dataclass(frozen=True)
class Heading:
    """A top-level heading: its 0-based line in the body, level, plain text and MkDocs anchor."""

    line: int
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Block:
    """A top-level block that must not be cut: its kind, source lines ``start``-``end`` (0-based,
    end excluded), its Markdown source and its plain text."""

    kind: BlockKind
    start: int
    end: int
    source: str
    text: str


@dataclass(frozen=True)
class Link:
    """An inline or reference link outside code: the 0-based body line it starts on, and its target."""

    line: int
    target: str


@dataclass(frozen=True)
class MarkdownDocument:
    """A parsed page body, in reading order."""

    headings: tuple[Heading, ...]
    blocks: tuple[Block, ...]
    links: tuple[Link, ...]
    line_count: int

    @property
    def title(self) -> str | None:
        """The first heading's plain text (any level), or None when the body has no heading."""
        return next((heading.text for heading in self.headings if heading.text), None)


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
    yield from parse_markdown(body).headings


def iter_links(body: str) -> list[tuple[int, str]]:
    """(0-based line index, target) of the links in a Markdown body, outside code."""
    return [(link.line, link.target) for link in parse_markdown(body).links]


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_markdown(body: str) -> MarkdownDocument:
    """Parse a page body (front matter already split off) once into headings, blocks and links."""
    lines = _LINE_BREAK_RE.split(body)
    tokens = _parser().parse(body)
    headings: list[Heading] = []
    blocks: list[Block] = []
    anchors = _AnchorMaker()
    for group in _top_level_groups(tokens):
        opening = group[0]
        if opening.type == "heading_open" and _is_python_markdown_heading(opening):
            headings.append(anchors.heading(opening, group[1]))
            continue
        block = _block(group, lines)
        if block is None:
            continue
        if blocks and _lists_in_a_row(blocks[-1], block, lines):
            block = _join_lists(blocks.pop(), block, lines)
        blocks.append(block)
    return MarkdownDocument(
        headings=tuple(headings), blocks=tuple(blocks), links=tuple(_links(tokens)), line_count=len(lines)
    )


class _SourceLinks(MarkdownIt):
    """markdown-it that keeps link targets as written (no percent-encoding), as the linter quotes them."""

    def normalizeLink(self, url: str) -> str:
        return url


def _link_with_line(state: StateInline, silent: bool) -> bool:
    """markdown-it's link rule, which also notes on the link token the line within the paragraph."""
    start, first_new = state.pos, len(state.tokens)
    if not _commonmark_link(state, silent):
        return False
    if not silent:
        offset = state.src.count("\n", 0, start)
        opened = next((token for token in state.tokens[first_new:] if token.type == "link_open"), None)
        if opened is not None:
            opened.meta["line_offset"] = offset
    return True


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Footnote definitions stay where they are written, as text, instead of moving to the end.
    parser = (_SourceLinks("commonmark").enable("table").use(admon_plugin)
              .use(footnote_plugin, inline=False, move_to_end=False))
    parser.inline.ruler.at("link", _link_with_line)
    return parser


def _top_level_groups(tokens: Sequence[Token]) -> Iterator[list[Token]]:
    """Top-level tokens grouped from each opening token to its closing one."""
    group: list[Token] = []
    depth = 0
    for token in tokens:
        group.append(token)
        depth += token.nesting
        if depth == 0:
            yield group
            group = []


def _is_python_markdown_heading(opening: Token) -> bool:
    """False for a setext heading of several lines: Python-Markdown reads only a one-line setext heading."""
    setext = opening.markup in ("=", "-")
    return not (setext and opening.map is not None and opening.map[1] - opening.map[0] > 2)


class _AnchorMaker:
    """Anchors made unique within a page the way Python-Markdown's toc does."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.counters: dict[str, int] = {}

    def heading(self, opening: Token, inline: Token) -> Heading:
        raw = inline.content
        custom = _ATTR_ID_RE.search(raw)
        text = inline_to_text(raw)
        anchor = custom.group(1) if custom else slugify(text, "-")
        line = opening.map[0] if opening.map else 0
        return Heading(line=line, level=int(opening.tag[1]), text=text, anchor=unique(anchor, self.used, self.counters))


_KINDS = {
    "paragraph_open": BlockKind.text,
    "heading_open": BlockKind.text,  # a multi-line setext heading: a paragraph for Python-Markdown
    "html_block": BlockKind.text,
    "blockquote_open": BlockKind.text,
    "bullet_list_open": BlockKind.list,
    "ordered_list_open": BlockKind.list,
    "table_open": BlockKind.table,
    "fence": BlockKind.code,
    "code_block": BlockKind.code,
    "admonition_open": BlockKind.admonition,
    "hr": BlockKind.rule,
}


def _block(group: list[Token], lines: list[str]) -> Block | None:
    """The block a top-level token group spans, trailing blank lines left out."""
    opening = group[0]
    maps = [token.map for token in group if token.map is not None]
    if not maps:
        return None
    start, end = min(m[0] for m in maps), max(m[1] for m in maps)
    while end > start and not lines[end - 1].strip():
        end -= 1
    kind = _KINDS.get(opening.type, BlockKind.text)
    return Block(kind=kind, start=start, end=end, source="\n".join(lines[start:end]),
                 text=_render(group, lines, start, end))


def _lists_in_a_row(first: Block, second: Block, lines: list[str]) -> bool:
    """True for two lists with nothing but blank lines between them."""
    kinds = (first.kind, second.kind) == (BlockKind.list, BlockKind.list)
    return kinds and not any(line.strip() for line in lines[first.end:second.start])


def _join_lists(first: Block, second: Block, lines: list[str]) -> Block:
    """Two lists with only blank lines between them: one list, as Python-Markdown reads them."""
    text = "\n".join(part for part in (first.text, second.text) if part)
    return Block(kind=BlockKind.list, start=first.start, end=second.end,
                 source="\n".join(lines[first.start:second.end]), text=text)


def _render(group: list[Token], lines: list[str], start: int, end: int) -> str:
    """Plain text of a block's lines: syntax removed, list markers and numbering kept."""
    special = _special_lines(group)
    out = []
    for number in range(start, end):
        if number in special:
            line = special[number]
            if line is None:
                continue
        else:
            line = inline_to_text(_TASK_RE.sub(r"\1- ", lines[number]))
        if line.strip():
            out.append(line.rstrip())
    return "\n".join(out)


def _special_lines(group: list[Token]) -> dict[int, str | None]:
    """Lines not rendered as inline text: code as written, table rows as cells, admonition titles;
    None for lines that render to nothing (code fences, a table's delimiter row, thematic breaks)."""
    special: dict[int, str | None] = {}
    for index, token in enumerate(group):
        if token.map is None:
            continue
        if token.type in ("fence", "code_block"):
            special.update(_code_lines(token, *token.map))
        elif token.type == "tr_open":
            special[token.map[0]] = _row_text(group, index)
        elif token.type == "thead_open":
            special[token.map[1]] = None  # the delimiter row follows the header row
        elif token.type == "admonition_open":
            special[token.map[0]] = token.content if '"' in token.info else None
        elif token.type == "hr":
            special[token.map[0]] = None
    return special


def _code_lines(token: Token, start: int, end: int) -> dict[int, str | None]:
    """Code lines as written (container indentation removed), fence lines dropped."""
    code = token.content.split("\n")[:-1] if token.content else []
    special: dict[int, str | None] = dict.fromkeys(range(start, end))
    first = start + 1 if token.type == "fence" else start
    for offset, line in enumerate(code):
        if first + offset < end:
            special[first + offset] = line
    return special


def _row_text(group: list[Token], row_index: int) -> str:
    """A table row as ``cell | cell``, each cell's inline Markdown made plain."""
    cells = []
    for token in group[row_index + 1:]:
        if token.type == "tr_close":
            break
        if token.type == "inline":
            cells.append(inline_to_text(token.content))
    return " | ".join(cells)


def _links(tokens: Sequence[Token]) -> Iterator[Link]:
    """Links in reading order, with the body line each starts on."""
    for token in tokens:
        if token.type != "inline" or not token.children or token.map is None:
            continue
        for child in token.children:
            if child.type == "link_open":
                target = str(child.attrs.get("href", ""))
                yield Link(line=token.map[0] + int(child.meta.get("line_offset", 0)), target=target)
