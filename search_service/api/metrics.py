"""GET /metrics in Prometheus format: requests and latency per endpoint, answers, feedback, index."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from search_service import service

router = APIRouter(tags=["metrics"])

CallNext = Callable[[Request], Awaitable[Response]]


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kb_http_requests_total", "HTTP requests", ["endpoint", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("kb_http_request_duration_seconds", "HTTP request latency", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.asks = Counter("kb_asks_total", "Questions answered or declined", ["answered", "mode"], registry=self.registry)
        self.feedback = Counter("kb_feedback_total", "Answer ratings received", ["rating"], registry=self.registry)
        self.store_errors = Counter("kb_store_errors_total", "Writes the feedback database refused (ask logs, ratings)",
                                    ["operation"], registry=self.registry)
        abstention = Gauge("kb_abstention_ratio", "Share of questions declined since start", registry=self.registry)
        abstention.set_function(self._abstention)
        age = Gauge("kb_index_age_seconds", "Seconds since the loaded index was built", registry=self.registry)
        age.set_function(lambda: _index_age(app))
        # Public pages only: /metrics answers anyone (see service.public_index).
        chunks = Gauge("kb_index_chunks", "Chunks of public pages in the loaded index", registry=self.registry)
        chunks.set_function(lambda: _public_count(app, "chunks"))
        pages = Gauge("kb_index_pages", "Public pages in the loaded index", registry=self.registry)
        pages.set_function(lambda: _public_count(app, "pages"))

    def _abstention(self) -> float:
        total = declined = 0.0
        for metric in self.asks.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    total += sample.value
                    declined += sample.value if sample.labels.get("answered") == "false" else 0.0
        return declined / total if total else 0.0


def _manifest(app: FastAPI) -> dict[str, Any]:
    retriever = getattr(app.state, "retriever", None)
    return dict(retriever.index.manifest) if retriever is not None else {}


def _public_count(app: FastAPI, key: str) -> float:
    retriever = getattr(app.state, "retriever", None)
    return float(cast(int, service.public_index(retriever)[key])) if retriever is not None else 0.0


def _index_age(app: FastAPI) -> float:
    built = _manifest(app).get("built_at")
    if not built:
        return 0.0
    return (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(built)).total_seconds()


async def record_request(request: Request, call_next: CallNext) -> Response:
    """Middleware: count and time every request under its route template (not the raw path)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None) or ("static" if request.url.path.startswith("/") else "other")
        metrics: Metrics = request.app.state.metrics
        metrics.requests.labels(endpoint, request.method, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
