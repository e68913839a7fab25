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
    """The index is loaded; includes a summary of its manifest and the ranking weights in force."""
    retriever = getattr(request.app.state, "retriever", None)
    if retriever is None:
        return JSONResponse({"status": "not ready", "message": "index not loaded"}, status_code=503)
    return service.readiness(retriever)
