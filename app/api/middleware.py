"""A request id for every request: taken from `X-Request-ID` if sane, else made; returned in
the response header and attached to every log line, so an error body can stay short."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Sequence

from opentelemetry import trace
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import gateway_error_response, internal_error_response
from app.errors import PayloadTooLarge, Unauthorized
from app.metrics import HTTP_REQUESTS
from app.services import audit

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ATTRIBUTE = "paseo_gateway.request_id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode(), b"")
        text = incoming.decode("latin-1")
        request_id = text if _SANE_ID.match(text) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        _tag_server_span(request_id)
        client = scope.get("client")
        audit_token = audit.begin_request(request_id, client[0] if client else None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            audit.end_request(audit_token)
            request_id_var.reset(token)


def _tag_server_span(request_id: str) -> None:
    """The id on the request's server span (FastAPI's instrumentation makes it current), so a
    trace can be found from an answer's X-Request-ID; nothing to do while tracing is off."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


class RequireCredentialsMiddleware:
    """Answer 401 before anything else when a protected route gets no credentials at all.

    Routes check keys themselves (scopes, ownership); this only makes a request without any
    key fail the same way whatever else is wrong with it (a body that is not JSON included).
    A path no route serves is left to the router (404), and a public page asked for with a
    trailing slash (`/docs/`) to its redirect.
    """

    def __init__(
        self, app: ASGIApp, *, public_paths: frozenset[str], routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.public_paths = public_paths
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Credentials first: cheap, and present on nearly every request, where matching the
        # path against every route is not.
        if scope["type"] != "http" or _has_credentials(scope) or self._needs_no_key(scope):
            await self.app(scope, receive, send)
            return
        error = Unauthorized("this route needs an API key: send `Authorization: Bearer <key>`")
        await gateway_error_response(error, scope["path"])(scope, receive, send)

    def _needs_no_key(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in self.public_paths or path.rstrip("/") in self.public_paths:
            return True
        return not any(route.matches(scope)[0] != Match.NONE for route in self.routes)


def _has_credentials(scope: Scope) -> bool:
    """A key, or a stream token where one is valid: reading a turn's events."""
    headers = dict(scope.get("headers") or [])
    if headers.get(b"authorization", b"").strip():
        return True
    reads_events = scope["method"] == "GET" and scope["path"].endswith("/events")
    return reads_events and b"token=" in scope.get("query_string", b"")


class BodyLimitMiddleware:
    """Refuse a request body over `max_bytes` with 413 before it is read into memory.

    A declared Content-Length is checked up front; a body without one (chunked) is read here,
    up to the limit, and then handed on.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._too_large(scope["path"])(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        messages = await self._read_bounded(receive)
        if messages is None:
            await self._too_large(scope["path"])(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _read_bounded(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once they pass the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages

    def _too_large(self, path: str) -> JSONResponse:
        return gateway_error_response(
            PayloadTooLarge(f"the request body is over {self.max_bytes} bytes"), path
        )


class UnexpectedErrorMiddleware:
    """A bug answers `500 internal_error` as a problem, logged once with its traceback.

    It sits inside the request-id middleware, so the answer carries `X-Request-ID` (the key to
    the log record), and it does not re-raise, so the server keeps the client's keep-alive
    connection. An error after the answer started cannot be answered: it goes on to the
    server, which logs it and closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            await internal_error_response(scope["path"])(scope, receive, send)


class MetricsMiddleware:
    """Counts answered requests by route template (never the raw path: ids would explode it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            HTTP_REQUESTS.labels(
                route=_route_template(scope), method=scope["method"], status=str(status)
            ).inc()


def _route_template(scope: Scope) -> str:
    """The matched route's path template. FastAPI's own routes (`/openapi.json`, static pages)
    are plain Starlette routes that record no route, only their endpoint: without parameters,
    their path is their template."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope["path"])
    return "unmatched"
