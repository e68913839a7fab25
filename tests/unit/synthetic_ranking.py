"""A tiny search index built in memory, and a deterministic embedder, for ranking tests without a model.

FAISS, BM25 and the word-piece store are the real ones; only the embedding model is replaced, by
a table of hand-chosen 4-dimensional vectors (axes: funding, intake, vendors, leave).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from search_service.content import PageMeta, PageType, SearchOptions, Status
from search_service.indexing.build import SearchIndex
from search_service.indexing.chunking import Chunk
from search_service.indexing.embedding import QueryEncoding, TokenVectors
from search_service.indexing.keyword import KeywordIndex
from search_service.indexing.tokens import TokenStore

DIMENSION = 4


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


PAGES = {
    "a/funding.md": PageMeta(title="Funding pilots", tags=["budget"]),
    "a/costs.md": PageMeta(title="Cost notes", tags=["budget"]),
    "a/old-intake.md": PageMeta(title="Old intake form", status=Status.deprecated, superseded_by="a/new-intake.md",
                                tags=["intake"]),
    "a/new-intake.md": PageMeta(title="Idea submission", type=PageType.playbook, tags=["intake"]),
    "a/secret.md": PageMeta(title="Vendor pricing positions", access=["procurement"], tags=["vendors"]),
    "a/holidays.md": PageMeta(title="Holidays", type=PageType.template),
}

# (page, heading or None for the page profile, text, vector)
SECTIONS = [
    ("a/funding.md", None, "Topics: budget. Sections: Budget lines; Platforms", unit(1, 0, 0, 0.2)),
    ("a/funding.md", "Budget lines", "Pilots are funded by the department that benefits from them.", unit(1, 0, 0, 0)),
    ("a/funding.md", "Platforms", "Platforms are funded centrally by the CoE.", unit(0.8, 0, 0, 0.6)),
    ("a/costs.md", None, "Topics: budget. Sections: Costs", unit(0.7, 0, 0, 0.7)),
    ("a/costs.md", "Costs", "Some pilots are paid for centrally.", unit(0.7, 0, 0.1, 0.7)),
    ("a/old-intake.md", None, "Topics: intake. Sections: How to submit", unit(0, 1, 0, 0.1)),
    ("a/old-intake.md", "How to submit", "Email the intake form for ideas to the CoE mailbox.", unit(0, 1, 0, 0)),
    ("a/new-intake.md", None, "Topics: intake. Sections: Submitting", unit(0, 0.8, 0.6, 0)),
    ("a/new-intake.md", "Submitting", "Use the portal to propose an initiative; the triage board meets weekly.",
     unit(0, 0.7, 0.7, 0)),
    ("a/secret.md", None, "Topics: vendors. Sections: Discounts", unit(0, 0, 1, 0.1)),
    ("a/secret.md", "Discounts", "Our walk-away discount for GPU vendors is 30 percent.", unit(0, 0, 1, 0)),
    ("a/holidays.md", None, "Sections: Leave", unit(0, 0, 0, 1)),
    ("a/holidays.md", "Leave", "Book leave in the HR system.", unit(0.1, 0, 0, 1)),
]

# The questions' sentence vectors; any other text gets FALLBACK.
QUERIES = {
    "who funds pilots": unit(1, 0, 0, 0.1),
    "email the intake form": unit(0, 1, 0, 0),
    "walk-away discount for GPU vendors": unit(0, 0, 1, 0),
    "book leave": unit(0, 0, 0, 1),
    "holiday leave booking": unit(1, 0, 0, 0),  # words of the holidays page, meaning of the funding page
    "zzzz qqqq": unit(0, 0, 0, 1),
}
FALLBACK = unit(1, 1, 1, 1)
QUERY_PIECE_ID = 7  # the one word piece every synthetic query has


def make_chunks() -> list[Chunk]:
    chunks = []
    for ordinal, (page, heading, text, _) in enumerate(SECTIONS):
        title = PAGES[page].title
        if heading is None:
            chunks.append(Chunk(page, title, [], "", text, ordinal=-1, part=-1, kind="profile"))
        else:
            chunks.append(Chunk(page, title, [heading], heading.lower().replace(" ", "-"), text, ordinal=ordinal))
    return chunks


def token_store(token_vectors: list[np.ndarray]) -> TokenStore:
    """One word piece per chunk (its token vector), all with the same piece id as the queries'."""
    rows = np.stack(token_vectors).astype(np.float16)
    spans = np.array([(0, i, i + 1) for i in range(len(token_vectors))], dtype=np.int64)
    df = np.zeros(QUERY_PIECE_ID + 1, dtype=np.int32)
    df[QUERY_PIECE_ID] = 1  # rare, so the piece carries weight
    return TokenStore([rows], spans, df)


def make_index(*, pages: dict[str, PageMeta] | None = None, tokens: list[np.ndarray] | None = None) -> SearchIndex:
    """The synthetic index; ``tokens`` gives each chunk's word-piece vector (None: no re-ranker)."""
    pages = pages or PAGES
    chunks = make_chunks()
    dense = faiss.IndexFlatIP(DIMENSION)
    dense.add(np.stack([vector for *_, vector in SECTIONS]))
    documents = [f"{meta.title}\n" + "\n".join(c.text for c in chunks if c.page_path == path) for path, meta in pages.items()]
    return SearchIndex(chunks=chunks, pages=dict(pages), dense=dense,
                       keyword=KeywordIndex.build([c.embed_text() for c in chunks]),
                       page_keyword=KeywordIndex.build(documents), manifest={"tuning": None}, path=Path("."),
                       tokens=token_store(tokens) if tokens is not None else None)


def with_page(path: str, **changes: object) -> dict[str, PageMeta]:
    """The synthetic pages with one page's front matter changed."""
    pages = dict(PAGES)
    pages[path] = PAGES[path].model_copy(update=changes)
    return pages


def boosted(path: str, boost: float) -> dict[str, PageMeta]:
    return with_page(path, search=SearchOptions(boost=boost))


@dataclass
class FixedEmbedder:
    """A deterministic stand-in for the embedding model: looks the query up in QUERIES, counts calls.

    ``token_vectors`` gives a query's single word-piece vector (default: its sentence vector).
    """

    token_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    name: str = "fixed-vectors"
    dimension: int = DIMENSION

    def embed_query(self, text: str) -> np.ndarray:
        self.calls.append(("embed", text))
        return QUERIES.get(text, FALLBACK).copy()

    def encode_query(self, text: str) -> QueryEncoding:
        self.calls.append(("encode", text))
        vector = QUERIES.get(text, FALLBACK).copy()
        token = self.token_vectors.get(text, vector).astype(np.float16).reshape(1, -1)
        return QueryEncoding(vector, TokenVectors(np.array([QUERY_PIECE_ID], dtype=np.int32), token), ["word"])
