"""Liveness and readiness for load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from search_service import service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> dict[str, object] | JSONResponse:
    """The index is loaded and the feedback database takes writes; includes a summary of the index's
    manifest and the ranking weights in force."""
    retriever = getattr(request.app.state, "retriever", None)
    if retriever is None:
        return JSONResponse({"status": "not ready", "message": "index not loaded"}, status_code=503)
    store = getattr(request.app.state, "store", None)
    problem = store.check_writable() if store is not None else None
    if problem is not None:  # answers still work, but ratings and ask logs would be refused
        return JSONResponse({"status": "not ready", "message": problem}, status_code=503)
    return service.readiness(retriever)
