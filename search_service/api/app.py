"""Application factory: loads the index once in ``lifespan``; serves the API and the built site."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from search_service import __version__
from search_service.api import admin, ask, feedback, health, metrics, search, security
from search_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def load_state(settings: Settings):
    """Embedder, index and retriever for the service. Raises IndexLoadError / ModelLoadError."""
    from search_service.indexing.build import load_index
    from search_service.indexing.embedding import make_embedder
    from search_service.ranking.retriever import HybridRetriever

    embedder = make_embedder(settings)
    index = load_index(settings.index_dir, model=embedder.name, dimension=embedder.dimension)
    return HybridRetriever.from_settings(index, embedder, settings)


def _reload_on_sighup(app: FastAPI) -> None:
    """`kill -HUP <pid>` reloads the index, like POST /v1/admin/reload."""
    import asyncio
    import signal
    import threading

    def reload() -> None:
        try:
            result = admin.reload_index(app)
            logger.warning("SIGHUP: index reloaded (%s chunks)", result["chunks"])
        except Exception as exc:
            logger.error("SIGHUP: new index rejected, still serving the previous one: %s", exc)

    def handler() -> None:
        # Load off the event loop, so requests keep flowing while the new index is read.
        threading.Thread(target=reload, name="kb-reload", daemon=True).start()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)
    except (RuntimeError, ValueError, NotImplementedError):
        pass  # not the main thread (embedded in tests) or no signals on this platform


def _error(status: int, message: str, details=None) -> JSONResponse:
    body = {"error": {"status": status, "message": message}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status)


def open_store(settings: Settings):
    """The feedback store, migrated to the latest schema, old rows purged."""
    from search_service.store import Store

    store = Store.from_settings(settings)
    store.migrate()
    removed = store.purge(settings.log_retention_days)
    if removed:
        logger.info("purged %s ask log(s) older than %s days", removed, settings.log_retention_days)
    return store


def create_app(settings: Settings | None = None, *, retriever=None, serve_site: bool = True) -> FastAPI:
    """Build the FastAPI app.

    Args:
        settings: defaults to the process settings (``KB_*``).
        retriever: an already-loaded retriever (tests, benchmarks); loaded in lifespan otherwise.
        serve_site: mount the built MkDocs site at ``/`` when it exists.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.retriever = retriever if retriever is not None else load_state(settings)
        app.state.store = open_store(settings)
        _reload_on_sighup(app)
        manifest = app.state.retriever.index.manifest
        logger.info("index loaded: %s pages, %s chunks, model %s", manifest.get("pages"), manifest.get("chunks"), manifest.get("model"))
        yield
        app.state.store.dispose()

    app = FastAPI(
        title="AI CoE playbook search",
        version=__version__,
        description="Semantic + keyword search over the AI Center of Excellence playbooks.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in err["loc"] if p not in ("query", "body")), "message": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(422, f"invalid request: {summary}", details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        logger.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal error; the incident was logged")

    app.state.metrics = metrics.Metrics(app)
    app.state.rate_limiter = security.RateLimiter(settings.rate_limit_per_minute)
    app.state.settings = settings
    # Middlewares run outermost-last: metrics see every request, including rejected ones.
    app.middleware("http")(security.guard)
    app.middleware("http")(metrics.record_request)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # the portal's own origin needs no CORS; others only when listed
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(feedback.router)
    app.include_router(admin.router)
    app.include_router(search.router)
    app.include_router(ask.router)

    site = Path(settings.site_dir)
    if serve_site and (site / "index.html").is_file():
        app.mount("/", StaticFiles(directory=site, html=True), name="site")
    elif serve_site:
        logger.warning("no built site at %s: run `mkdocs build` to serve the portal at /", site)
    return app
