"""Liveness and readiness for load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request):
    """The index is loaded; includes a summary of its manifest and the ranking weights in force."""
    retriever = getattr(request.app.state, "retriever", None)
    if retriever is None:
        return JSONResponse({"status": "not ready", "message": "index not loaded"}, status_code=503)
    manifest = retriever.index.manifest
    config = retriever.config
    return {
        "status": "ready",
        "index": {key: manifest.get(key) for key in
                  ("model", "dimension", "chunker_version", "index_type", "pages", "chunks", "built_at", "content_hash")},
        "ranking": {"fusion_weights": list(config.fusion_weights),
                    "rerank_weight": config.rerank_weight, "rerank_depth": config.rerank_depth,
                    "content_tuning": manifest.get("tuning")},  # the content's .kb-tuning.json, if any
    }
