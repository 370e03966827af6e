"""The ASGI middleware every request of ``shoal serve`` passes: bearer-key auth (the key, its
graphs, the scope a route needs), the body size cap, OpenAI-style errors for whatever escapes the
app, and one access-log event per request.

The access event (``http_request``) holds method, path, status, latency and the key's name, never
a body, a query string or a header value; a path that is not one of the server's routes is logged
as ``<other>`` (a client could put anything in it), and one that matches a route with a
parameter as the route (``/v1/review/{entry_id}``), never the value.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from shoal.observability.logging import get_logger
from shoal.service.keys import KeyStore

__all__ = ["ApiError", "BodyTooLarge", "Gate", "error_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = get_logger()

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
          503: "server_error"}
_CODES = {400: "bad_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "request_too_large", 422: "invalid_request",
          429: "rate_limit_exceeded", 500: "internal_error", 503: "not_ready"}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's API answers."""
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "param": None, "code": code or _CODES.get(status, "error")}}


class ApiError(HTTPException):
    """An HTTP error with an OpenAI-style ``code``; its message must never quote input."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code or _CODES.get(status, "error")


class BodyTooLarge(ApiError):
    # An HTTPException, so that FastAPI's body parsing passes it on instead of turning it into a
    # generic 400.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes",
                         headers={"connection": "close"})


async def send_error(send: Send, status: int, message: str, code: str | None = None,
                     headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps(error_body(status, message, code), separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Outermost app middleware (inside Starlette's own error middleware)."""

    def __init__(self, app: ASGIApp, *, keys: KeyStore | None, graph: str, max_body: int,
                 routes: frozenset[str], open_paths: frozenset[str],
                 scopes: Mapping[str, str] | None = None) -> None:
        """``routes`` may hold templates with one ``{param}`` per segment; ``scopes`` maps a
        route to the scope a key needs for it (a route not in it needs none)."""
        self.app = app
        self.keys = keys
        self.graph = graph
        self.max_body = max_body
        self.routes = routes
        self.open_paths = open_paths
        self.scopes = dict(scopes or {})
        self._templates = [(r, r.split("/")) for r in sorted(routes) if "{" in r]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen: dict[str, Any] = {"status": None, "key": None}

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, tracked, seen)
        except Exception as exc:
            # Only the type: a foreign exception's message may quote the request.
            _log.error("http_unhandled", path=self._path(scope), error_type=type(exc).__name__)
            if seen["status"] is None:
                await send_error(tracked, 500, "internal server error")
        finally:
            _log.info("http_request", method=scope.get("method"), path=self._path(scope),
                      status=seen["status"],
                      latency_ms=round((time.perf_counter() - start) * 1000.0, 3),
                      key=seen["key"])

    def _route(self, path: str) -> str | None:
        """The route ``path`` matches (itself, or a template), or None."""
        if path in self.routes:
            return path
        parts = path.split("/")
        for route, pattern in self._templates:
            if len(pattern) == len(parts) and all(
                    (p.startswith("{") and p.endswith("}") and bool(v)) or p == v
                    for p, v in zip(pattern, parts, strict=True)):
                return route
        return None

    def _path(self, scope: Scope) -> str:
        return self._route(scope.get("path", "")) or "<other>"

    async def _handle(self, scope: Scope, receive: Receive, send: Send,
                      seen: dict[str, Any]) -> None:
        if self.keys is not None and scope.get("path") not in self.open_paths:
            denied = self._authorize(scope, seen)
            if denied is not None:
                status, message, code = denied
                headers = {"www-authenticate": "Bearer"} if status == 401 else None
                await send_error(send, status, message, code, headers)
                return
        length = _header(scope, b"content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                await send_error(send, 400, "invalid Content-Length", "bad_request",
                                 {"connection": "close"})
                return
            if int(length) > self.max_body:
                await send_error(send, 413, f"request body larger than {self.max_body} bytes",
                                 None, {"connection": "close"})
                return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, capped, send)
        except BodyTooLarge as exc:  # raised outside FastAPI's handlers (a raw route)
            if seen["status"] is None:
                await send_error(send, 413, str(exc.detail), exc.code, exc.headers)

    def _authorize(self, scope: Scope, seen: dict[str, Any]) -> tuple[int, str, str] | None:
        assert self.keys is not None
        header = _header(scope, b"authorization")
        if header is None:
            return 401, "missing API key: send 'Authorization: Bearer KEY'", "missing_api_key"
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return 401, "malformed Authorization header: expected 'Bearer KEY'", "invalid_api_key"
        key = self.keys.lookup(token)
        if key is None:
            return 401, "unknown API key", "invalid_api_key"
        seen["key"] = key.name
        if not key.allows(self.graph):
            return 403, f"this key may not call graph {self.graph!r}", "graph_not_allowed"
        route = self._route(scope.get("path", ""))
        needed = self.scopes.get(route) if route is not None else None
        if needed is not None and not key.has_scope(needed):
            return (403, f"this key lacks the {needed!r} scope this route needs (a key made "
                    f"with `shoal keys add NAME --scope {needed}` has it)", "forbidden")
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
