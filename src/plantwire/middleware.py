"""ASGI middleware of the HTTP surface: request body limit, request ids, structured access log
and Prometheus request metrics. Pure ASGI (no per-request task or thread hops)."""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantwire.problems import problem_response

__all__ = ["BodySizeLimit", "BodyTooLarge", "HttpMetrics", "RequestLog"]

_log = structlog.get_logger("plantwire.http")


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit. An HTTPException so FastAPI's body parsing
    passes it through unchanged, and the problem handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class BodySizeLimit:
    """Refuse bodies over ``max_bytes``: at once when Content-Length says so, else while
    streaming, before the handler sees more than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes or declared < 0:
                    await self._refuse(scope, receive, send, 413 if declared >= 0 else 400)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        if status == 413:
            detail = f"The request body exceeds the limit of {self.max_bytes} bytes."
        else:
            detail = "Content-Length is not a valid length."
        response = problem_response(
            status, detail, instance=scope["path"], headers={"connection": "close"}
        )
        await response(scope, receive, send)


#: Methods counted under their own name; any other method is counted as "OTHER", so clients
#: cannot add label values (metric series) by inventing methods.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str) -> str:
    return method if method in _KNOWN_METHODS else "OTHER"


def _route_template(scope: Scope) -> str:
    """The matched route as a template (``/api/v1/users/{user_id}``), so metric labels stay
    few however many ids are requested.

    Each path parameter replaces one whole path segment equal to its value, the last such
    segment before the next parameter's: a value that equals an earlier literal segment
    (``/api/v1/users/users``) replaces the parameter's segment, not the literal's."""
    route = scope.get("route")
    if route is None:
        return "<unmatched>"
    segments = str(scope["path"]).split("/")
    params: dict[str, object] = scope.get("path_params") or {}
    end = len(segments)  # parameters come in path order: each one lies before the next
    for name, value in reversed(list(params.items())):
        for index in range(end - 1, 0, -1):
            if segments[index] == str(value):
                segments[index] = f"{{{name}}}"
                end = index
                break
        else:
            # a value spanning segments ({name:path}): the route's own pattern, never the value
            return str(getattr(route, "path_format", "<unmatched>"))
    return "/".join(segments)


class HttpMetrics:
    """Counts requests and their latency per method, route template and status class."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "plantwire_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "plantwire_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=registry,
        )


class RequestLog:
    """Gives each request an id (``X-Request-ID``), logs one structured line per request and
    records its metrics."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                method = _method_label(scope["method"])
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(elapsed)
                client = scope.get("client")
                _log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    route=route,
                    status=status,
                    ms=round(elapsed * 1000, 2),
                    client=client[0] if client else None,
                )
