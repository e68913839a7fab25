"""Request guards: body size, authentication, per-identity rate limits (in that order)."""

from __future__ import annotations

import math
import time

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from search_service.api.deps import Identity
from search_service.api.metrics import CallNext
from search_service.auth import AuthError, identity_from_proxy, identity_from_token, is_loopback


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


class RateLimiter:
    """Token bucket per identity: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        if len(self.buckets) > 100_000:  # forget idle identities rather than grow without bound
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 120}
        return (1.0 - tokens) / self.rate


def resolve_identity(request: Request) -> Identity:
    """The caller's identity under the configured KB_AUTH mode; raises AuthError."""
    settings = request.app.state.settings
    host = request.client.host if request.client else ""
    if settings.auth == "token":
        user, groups, admin = identity_from_token(request.app.state.store, request.headers.get("authorization"))
        return Identity(user_id=user, groups=groups, admin=admin or settings.admin_group in groups)
    if settings.auth == "proxy":
        user, groups = identity_from_proxy(request.headers, host, settings.trusted_proxies)
        return Identity(user_id=user, groups=groups, admin=settings.admin_group in groups)
    if not is_loopback(host):
        raise AuthError(403, "this service runs without authentication (KB_AUTH=none) and only answers loopback clients")
    return Identity(user_id=f"local:{host}", admin=True)


async def guard(request: Request, call_next: CallNext) -> Response:
    """Middleware: reject oversized bodies, authenticate /v1 calls, and rate-limit them per identity.

    Everything outside /v1 (health checks, metrics, the API schema, the site) is open.
    """
    path = request.url.path
    if not path.startswith("/v1/"):
        return await call_next(request)
    settings = request.app.state.settings
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > settings.max_body_bytes:
            return _error(413, f"request body larger than {settings.max_body_bytes} bytes")
    elif request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return _error(413, f"request body larger than {settings.max_body_bytes} bytes")
    try:
        identity = resolve_identity(request)
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, str(exc), headers)
    request.state.identity = identity
    wait = request.app.state.rate_limiter.take(identity.user_id)
    if wait > 0:
        return _error(429, "too many requests; slow down", {"Retry-After": str(max(1, math.ceil(wait)))})
    return await call_next(request)
