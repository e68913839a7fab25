"""What clients receive: the response models of search and answers, shared by the API, the CLI's
``--json`` output and every other channel, and the functions that shape library results into them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from search_service.answering import AnswerMode, AnswerResult
from search_service.content import Status, page_url
from search_service.ranking.retriever import Hit, SearchResult, chunk_url, make_snippet
from search_service.settings import Settings


class SectionOut(BaseModel):
    section: str = Field(description="Heading path, e.g. 'Steps > Step 2: Score value'.")
    url: str = Field(description="Page URL with the section's #anchor.")
    snippet: str = Field(description="HTML-escaped text with query terms wrapped in <mark>.")
    score: float


class SearchHit(BaseModel):
    url: str = Field(description="Page URL plus #anchor of the best section.")
    title: str
    section: str = Field(description="Heading path of the best section; empty for the page as a whole.")
    snippet: str = Field(description="HTML-escaped text with query terms wrapped in <mark>.")
    score: float
    type: str
    owner: str
    last_reviewed: dt.date | None
    stale: bool
    status: str
    deprecated: bool
    superseded_by: str | None = Field(None, description="URL of the page that replaces a deprecated one.")
    replaces: str | None = Field(None, description="Path of a deprecated page this hit stands in for.")
    path: str = Field(description="Source path relative to the content folder.")
    more_sections: list[SectionOut] = Field(default_factory=list)


class SearchResponse(BaseModel):
    query: str
    k: int
    hits: list[SearchHit]


class CitationOut(BaseModel):
    n: int
    title: str
    section: str
    url: str
    snippet: str = Field(description="HTML-escaped, query terms in <mark>.")


class SuggestionOut(BaseModel):
    title: str
    url: str


class AskResponse(BaseModel):
    answer: str = Field(description="Plain text with [n] citation markers (not HTML: escape before inserting).")
    answered: bool
    citations: list[CitationOut]
    confidence: float = Field(ge=0, le=1)
    mode: AnswerMode
    id: str
    suggestions: list[SuggestionOut] = Field(default_factory=list)
    fallback: str | None = Field(None, description="Why a generative request was answered extractively.")
    invalid_citations: list[int] = Field(default_factory=list, description="Citation numbers the LLM made up (removed).")


def _hit_out(hit: Hit, result: SearchResult, settings: Settings, visible_pages: set[str]) -> SearchHit:
    best = hit.best
    successor_url = None
    # Only a page the reader may see is named as the successor (its URL would leak otherwise).
    if hit.superseded_by and hit.superseded_by in visible_pages:
        successor_url = settings.site_url.rstrip("/") + "/" + page_url(hit.superseded_by)
    return SearchHit(
        url=chunk_url(best, settings.site_url),
        title=hit.meta.title,
        section=best.section,
        snippet=make_snippet(best.text, result.terms),
        score=round(hit.score, 4),
        type=hit.meta.type.value,
        owner=hit.meta.owner,
        last_reviewed=hit.meta.last_reviewed,
        stale=hit.meta.is_stale(settings.current_date()),
        status=hit.meta.status.value,
        deprecated=hit.meta.status is Status.deprecated,
        superseded_by=successor_url,
        replaces=hit.promoted_from,
        path=hit.page_path,
        more_sections=[
            SectionOut(section=m.chunk.section, url=chunk_url(m.chunk, settings.site_url),
                       snippet=make_snippet(m.chunk.text, result.terms), score=round(m.score, 4))
            for m in hit.sections[1:]
        ],
    )


def search_response(result: SearchResult, *, k: int, settings: Settings, visible_pages: set[str]) -> SearchResponse:
    """A search result shaped for clients; ``visible_pages`` are the pages the reader may see."""
    hits = [_hit_out(hit, result, settings, visible_pages) for hit in result.hits]
    return SearchResponse(query=result.query, k=k, hits=hits)


def ask_response(answer: AnswerResult) -> AskResponse:
    """An answer shaped for clients."""
    return AskResponse(
        answer=answer.answer, answered=answer.answered, confidence=answer.confidence,
        mode=answer.mode,
        id=answer.id,
        citations=[CitationOut(n=c.n, title=c.title, section=c.section, url=c.url, snippet=c.snippet)
                   for c in answer.citations],
        suggestions=[SuggestionOut(title=s.title, url=s.url) for s in answer.suggestions],
        fallback=answer.fallback, invalid_citations=answer.invalid_citations,
    )
