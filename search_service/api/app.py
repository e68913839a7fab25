"""Application factory: loads the index once in ``lifespan``; serves the API and the built site."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from search_service import __version__, service
from search_service.api import admin, ask, feedback, hardening, health, metrics, search, security
from search_service.api.live_index import LiveIndex
from search_service.ranking.retriever import HybridRetriever
from search_service.settings import Settings, get_settings
from search_service.store import STORE_RETRY_AFTER_SECONDS, StoreUnavailable, unavailable

logger = logging.getLogger(__name__)


def load_state(settings: Settings) -> HybridRetriever:
    """The retriever the service answers from. Raises IndexLoadError / ModelLoadError."""
    return service.open_retriever(settings)


def _reload_on_sighup(app: FastAPI) -> None:
    """`kill -HUP <pid>` reloads the index, like POST /v1/admin/reload (with several workers the supervisor
    forwards the signal to each: see :mod:`search_service.api.workers`)."""
    import asyncio
    import signal
    import threading

    def reload() -> None:
        try:
            result = admin.reload_index(app)
            logger.warning("SIGHUP: now serving build %s (%s chunks)", result["build"], result["chunks"])
        except Exception as exc:
            logger.error("SIGHUP: new index rejected, still serving the previous one: %s", exc)

    def handler() -> None:
        # Load off the event loop, so requests keep flowing while the new index is read.
        threading.Thread(target=reload, name="kb-reload", daemon=True).start()

    # Not the main thread (embedded in tests) or no signals on this platform: no SIGHUP reload.
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


def _ignore_sighup_until_ready() -> None:
    """A SIGHUP before the lifespan installs the reload handler would end a starting worker (the
    default action): ignore it until then; the worker follows the current build anyway."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _error(status: int, message: str, details: list[dict[str, str]] | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    error: dict[str, object] = {"status": status, "message": message}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON: ``{"error": {"status", "message"}}``, never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err["loc"] if p not in ("query", "body")), "message": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(422, f"invalid request: {summary}", details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)  # e.g. a 405's Allow

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, f"{exc}; try again later", headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Middleware (token lookups in the guard) reaches only this handler: a database outage is still a 503.
        down = unavailable(exc)
        if down is not None:
            logger.error("%s on %s", down, request.url.path)
            return await store_unavailable(request, down)
        logger.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal error; the incident was logged")


def _install_routes(app: FastAPI, settings: Settings) -> None:
    """Guards, metrics, CORS (only for listed origins) and one router per capability."""
    app.state.metrics = metrics.Metrics(app)
    app.state.rate_limiter = security.RateLimiter(settings.rate_limit_per_minute)
    # Middlewares run outermost-last: metrics see every request, including rejected ones.
    app.middleware("http")(security.guard)
    app.middleware("http")(metrics.record_request)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # the portal's own origin needs no CORS; others only when listed
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    # Outermost: refuse oversized headers before any other work; nosniff on every response, errors included.
    app.add_middleware(hardening.RequestHardening)
    for router in (health.router, metrics.router, feedback.router, admin.router, search.router, ask.router):
        app.include_router(router)
    # Last among the routes (before the site's mount at /): any other /v1 path or method gets a JSON 404/405.
    app.router.routes.extend(hardening.UNMATCHED_API_ROUTES)


def _mount_site(app: FastAPI, settings: Settings) -> None:
    site = Path(settings.site_dir)
    if (site / "index.html").is_file():
        app.mount("/", StaticFiles(directory=site, html=True), name="site")
    else:
        logger.warning("no built site at %s: run `mkdocs build` to serve the portal at /", site)


def create_app(settings: Settings | None = None, *, retriever: HybridRetriever | None = None,
               serve_site: bool = True) -> FastAPI:
    """Build the FastAPI app.

    Args:
        settings: defaults to the process settings (``KB_*``).
        retriever: an already-loaded retriever (tests, benchmarks); loaded in lifespan otherwise.
        serve_site: mount the built MkDocs site at ``/`` when it exists.
    """
    config = settings or get_settings()
    _ignore_sighup_until_ready()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = config
        app.state.retriever = retriever if retriever is not None else load_state(config)
        app.state.store = service.open_store(config)
        app.state.live_index = LiveIndex(app, config)
        _reload_on_sighup(app)
        manifest = app.state.retriever.index.manifest
        logger.info("index loaded: build %s, %s pages, %s chunks, model %s", app.state.retriever.index.path.name,
                    manifest.get("pages"), manifest.get("chunks"), manifest.get("model"))
        app.state.live_index.start()  # follow rebuilds, whichever worker or replica was told to reload
        yield
        app.state.live_index.stop()
        app.state.store.dispose()

    app = FastAPI(
        title="AI CoE playbook search",
        version=__version__,
        description="Semantic + keyword search over the AI Center of Excellence playbooks.",
        lifespan=lifespan,
    )
    app.state.settings = config
    _install_error_handlers(app)
    _install_routes(app, config)
    if serve_site:
        _mount_site(app, config)
    return app
