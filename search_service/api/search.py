"""GET /v1/search: hybrid semantic + keyword search over the playbooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from search_service import service
from search_service.api.deps import IdentityDep, RetrieverDep, SettingsDep
from search_service.responses import SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])

MAX_QUERY_CHARS = 500


@router.get("/search", response_model=SearchResponse)
def search(
    retriever: RetrieverDep,
    settings: SettingsDep,
    identity: IdentityDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The question or keywords.")],
    k: Annotated[int, Query(ge=1, le=50, description="Number of pages to return.")] = 10,
    type: Annotated[list[str] | None, Query(description="Only these page types.", max_length=10)] = None,
    tag: Annotated[list[str] | None, Query(description="Only pages with one of these tags.", max_length=20)] = None,
    audience: Annotated[list[str] | None, Query(description="Only pages for these audiences.", max_length=10)] = None,
) -> SearchResponse:
    """Pages that answer ``q``, best first, each linking to its best section."""
    if not q.strip():
        raise HTTPException(status_code=400, detail="q is blank: type a question or some keywords")
    filters = service.make_filters(type or (), tag or (), audience or ())
    return service.search(retriever, q, settings=settings, k=k, filters=filters, viewer=identity.viewer)
