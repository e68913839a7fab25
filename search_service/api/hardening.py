"""Request hardening below the routers: header size and count limits, ``nosniff``, JSON for every /v1 path.

The header limits also bound what a proxy-less deployment accepts; uvicorn's h11 parser has its own
limit (``h11_max_incomplete_event_size``), httptools has none, so the check here is the one that always
applies. It runs after the server has parsed the headers: it refuses abuse, the server limit bounds memory.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Apache's defaults (LimitRequestFields 100) and nginx's (large_client_header_buffers 4 x 8 KiB): what
# browsers and proxies in front of us already stay within.
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 32 * 1024
API_PREFIX = "/v1"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why these request headers are refused (too many, too large in total), or None."""
    if len(headers) > MAX_HEADER_COUNT:
        return f"too many request headers ({len(headers)}); at most {MAX_HEADER_COUNT} are accepted"
    size = sum(len(name) + len(value) for name, value in headers)
    if size > MAX_HEADER_BYTES:
        return f"request headers too large ({size} bytes); at most {MAX_HEADER_BYTES} bytes are accepted"
    return None


class RequestHardening:
    """ASGI middleware: 431 for oversized or too many headers; ``X-Content-Type-Options: nosniff`` on every
    response, so a browser never runs a report or an error body as HTML or script."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        problem = header_problem(scope["headers"])
        if problem is not None:
            await _error(431, problem)(scope, receive, send_nosniff)
            return
        await self.app(scope, receive, send_nosniff)


# The methods a /v1 path is tried with, to say which ones it allows.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some API route would take at this request's path (the site's mount aside)."""
    routes = [route for route in request.app.router.routes
              if route not in UNMATCHED_API_ROUTES and not isinstance(route, Mount)]
    return [method for method in HTTP_METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


async def _unmatched_api_path(request: Request) -> Response:
    """No /v1 route takes this path and method: a JSON 405 (with Allow) or 404, never the site's HTML page."""
    allowed = _allowed_methods(request)
    if allowed:
        return _error(405, f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
                      {"Allow": ", ".join(allowed)})
    return _error(404, f"no API endpoint at {request.url.path}; see /docs for the endpoints")


# Every method: the catch-all must come after the API's routes and before the site's mount.
UNMATCHED_API_ROUTES = [Route(path, _unmatched_api_path, methods=list(HTTP_METHODS), include_in_schema=False)
                        for path in (API_PREFIX, API_PREFIX + "/{rest:path}")]
