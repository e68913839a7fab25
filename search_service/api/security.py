"""Request guards: body size, authentication, per-identity rate limits (in that order).

Who a request comes from is decided by the socket peer: a forwarding header counts only when that
peer is in KB_TRUSTED_PROXIES (uvicorn's own proxy-header handling is off, see ``api/server.py``).
Failed authentications are limited per client address, requests per identity; both counts live in
the database, shared by every worker and replica (``api/ratelimit.py``).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from search_service.api.deps import Identity
from search_service.api.metrics import CallNext
from search_service.api.ratelimit import RateLimiter, retry_after
from search_service.auth import AuthError, client_address, identity_from_proxy, identity_from_token, is_loopback
from search_service.store import STORE_RETRY_AFTER_SECONDS, unavailable

__all__ = ["RateLimiter", "guard", "request_address", "resolve_identity"]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def _peer(request: Request) -> str:
    """The socket peer's address, as the ASGI server saw it (never a header)."""
    return request.client.host if request.client else ""


def request_address(request: Request) -> str:
    """The client's address: the socket peer, or what a trusted proxy forwarded (see ``auth.client_address``)."""
    settings = request.app.state.settings
    # Every line: a proxy may add its own line after the client's instead of extending it.
    forwarded = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    return client_address(_peer(request), forwarded, settings.trusted_proxies)


def resolve_identity(request: Request, address: str) -> Identity:
    """The caller's identity under the configured KB_AUTH mode; raises AuthError.

    ``address`` is the client's address from :func:`request_address`.
    """
    settings = request.app.state.settings
    if settings.auth == "token":
        user, groups, admin = identity_from_token(request.app.state.store, request.headers.get("authorization"))
        return Identity(user_id=user, groups=groups, admin=admin or settings.admin_group in groups)
    if settings.auth == "proxy":
        # The proxy itself is judged by the socket peer: a header cannot vouch for its own sender.
        user, groups = identity_from_proxy(request.headers, _peer(request), settings.trusted_proxies)
        return Identity(user_id=user, groups=groups, admin=settings.admin_group in groups)
    if not is_loopback(address):
        raise AuthError(403, "this service runs without authentication (KB_AUTH=none) and only answers loopback clients")
    return Identity(user_id=f"local:{address}", admin=True)


def _admit(request: Request) -> JSONResponse | None:
    """Authenticate and count the request; a response when it is refused, None when it may proceed.

    Blocking database work, so the middleware runs it in a worker thread.
    """
    store, limiter = request.app.state.store, request.app.state.rate_limiter
    address = request_address(request)
    wait = limiter.failures_wait(store, address)
    if wait > 0:  # checked before the credentials, so a guesser learns nothing more until the wait is over
        return _error(429, "too many failed authentications from this address; wait before trying again",
                      {"Retry-After": retry_after(wait)})
    try:
        identity = resolve_identity(request, address)
    except AuthError as exc:
        limiter.record_failure(store, address)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, str(exc), headers)
    except Exception as exc:  # a token lookup with the database down: a clear 503, not a traceback per request
        down = unavailable(exc)
        if down is None:
            raise
        return _error(503, f"{down}; try again later", {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})
    request.state.identity = identity
    wait = limiter.take(store, identity.user_id)
    if wait > 0:
        return _error(429, "too many requests; slow down", {"Retry-After": retry_after(wait)})
    return None


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
    refusal = await run_in_threadpool(_admit, request)
    return refusal if refusal is not None else await call_next(request)
