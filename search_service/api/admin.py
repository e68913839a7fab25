"""POST /v1/admin/reload: swap in a newly built index with no failed requests."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request

from search_service.api.deps import IdentityDep
from search_service.api.live_index import LiveIndex
from search_service.indexing.errors import IndexLoadError

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def live_index(app: FastAPI) -> LiveIndex:
    """The app's :class:`LiveIndex` (set in lifespan)."""
    live: LiveIndex = app.state.live_index
    return live


def reload_index(app: FastAPI) -> dict[str, object]:
    """Load the index that is current on disk into this worker and swap it in; the old one keeps serving on
    failure. The other workers follow on their own (see :mod:`search_service.api.live_index`).

    Raises:
        IndexLoadError: the current build is missing, broken or changed since it was written.
    """
    return live_index(app).reload().as_dict()


@router.post("/reload")
def reload_endpoint(request: Request, identity: IdentityDep) -> dict[str, object]:
    """Reload the index from disk (administrators only) in the worker that receives the request; the others
    switch within seconds. A broken index is refused with 409."""
    identity.require_admin()
    try:
        return reload_index(request.app)
    except IndexLoadError as exc:
        raise HTTPException(status_code=409, detail=f"new index rejected, still serving the previous one: {exc}") from exc
