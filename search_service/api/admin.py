"""POST /v1/admin/reload: swap in a newly built index with no failed requests."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request

from search_service import service
from search_service.api.deps import IdentityDep
from search_service.indexing.build import IndexLoadError

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def reload_index(app: FastAPI) -> dict[str, object]:
    """Load the index that is current on disk and swap it in; the old one keeps serving on failure.

    Requests already running finish on the retriever they started with.
    """
    app.state.retriever = service.reload_retriever(app.state.settings, app.state.retriever)  # new tuning too
    manifest = app.state.retriever.index.manifest
    return {"status": "reloaded", "pages": manifest.get("pages"), "chunks": manifest.get("chunks"),
            "built_at": manifest.get("built_at"), "content_hash": manifest.get("content_hash")}


@router.post("/reload")
def reload_endpoint(request: Request, identity: IdentityDep) -> dict[str, object]:
    """Reload the index from disk (administrators only). A broken index is refused with 409."""
    identity.require_admin()
    try:
        return reload_index(request.app)
    except IndexLoadError as exc:
        raise HTTPException(status_code=409, detail=f"new index rejected, still serving the previous one: {exc}") from exc
