"""Search results as the API and the CLI present them (one set of pydantic models for both)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from search_service.content import page_url
from search_service.ranking.retriever import ANONYMOUS, Filters, HybridRetriever, Viewer, chunk_url, make_snippet
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


def search_response(
    retriever: HybridRetriever,
    query: str,
    *,
    k: int,
    filters: Filters,
    settings: Settings,
    viewer: Viewer = ANONYMOUS,
) -> SearchResponse:
    """Run a search and shape it for clients."""
    result = retriever.search(query, k=k, filters=filters, viewer=viewer)
    today = settings.current_date()
    hits = []
    for hit in result.hits:
        best = hit.best
        successor_url = None
        if hit.superseded_by and hit.superseded_by in retriever.index.pages:
            successor_url = settings.site_url.rstrip("/") + "/" + page_url(hit.superseded_by)
        hits.append(SearchHit(
            url=chunk_url(best, settings.site_url),
            title=hit.meta.title,
            section=best.section,
            snippet=make_snippet(best.text, result.terms),
            score=round(hit.score, 4),
            type=hit.meta.type.value,
            owner=hit.meta.owner,
            last_reviewed=hit.meta.last_reviewed,
            stale=hit.meta.is_stale(today),
            status=hit.meta.status.value,
            deprecated=hit.meta.status.value == "deprecated",
            superseded_by=successor_url,
            replaces=hit.promoted_from,
            path=hit.page_path,
            more_sections=[
                SectionOut(section=m.chunk.section, url=chunk_url(m.chunk, settings.site_url),
                           snippet=make_snippet(m.chunk.text, result.terms), score=round(m.score, 4))
                for m in hit.sections[1:]
            ],
        ))
    return SearchResponse(query=query, k=k, hits=hits)
