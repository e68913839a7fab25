"""Links to sections and highlighted snippets of their text, for result cards and citations."""

from __future__ import annotations

import html
import logging
from functools import lru_cache

import numpy as np

from search_service.content import page_url
from search_service.indexing.chunking import Chunk
from search_service.indexing.keyword import _WORD_RE, stem_word

logger = logging.getLogger(__name__)

# Set by hand: words a snippet shows around the query's terms.
SNIPPET_WORDS = 36
# Set by hand: distinct section texts whose tokens and stems are kept (a few MB at most).
STEM_CACHE_SIZE = 16384


def chunk_url(chunk: Chunk, site_url: str = "/") -> str:
    """Link to the chunk's section: page URL plus the MkDocs anchor."""
    base = site_url if site_url.endswith("/") else site_url + "/"
    url = base + page_url(chunk.page_path)
    return f"{url}#{chunk.anchor}" if chunk.anchor else url


@lru_cache(maxsize=STEM_CACHE_SIZE)
def _token_stems(text: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """Whitespace tokens of a text and the stem of each (None for stopwords/punctuation); cached per text."""
    tokens = tuple(text.split())
    stems = []
    for token in tokens:
        match = _WORD_RE.search(token.lower())
        stems.append(stem_word(match.group(0)) if match else None)
    return tokens, tuple(stems)


def make_snippet(text: str, terms: list[str], *, words: int = SNIPPET_WORDS) -> str:
    """An HTML-escaped window of ``text`` with query terms wrapped in ``<mark>``."""
    tokens, stems = _token_stems(text)
    if not tokens:
        return ""
    wanted = set(terms)
    flags = [stem in wanted for stem in stems]
    # The window with the most query terms (prefix sums keep this linear in the text length).
    prefix = np.concatenate([[0], np.cumsum(flags)])
    span = min(words, len(tokens))
    counts = prefix[span:] - prefix[: len(tokens) - span + 1]
    start = int(np.argmax(counts))
    end = start + span
    out: list[str] = []
    plain: list[str] = []
    for i in range(start, end):
        if flags[i]:
            if plain:
                out.append(html.escape(" ".join(plain)))
                plain = []
            out.append(f"<mark>{html.escape(tokens[i])}</mark>")
        else:
            plain.append(tokens[i])
    if plain:
        out.append(html.escape(" ".join(plain)))
    prefix_mark = "… " if start > 0 else ""
    suffix = " …" if end < len(tokens) else ""
    return prefix_mark + " ".join(out) + suffix
