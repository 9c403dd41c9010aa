"""The HTTP side of observability, as one ASGI middleware (the outermost: it sees every answer, the 500s
of unhandled exceptions included): the request id (a valid incoming X-Request-ID, else a new one) on
`request.state.request_id`, on the response, on log lines and on the events the request causes; the
rate and latency per route template; the server span of the trace."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.context import REQUEST_ID_HEADER, new_request_id, request_id_bound, valid_request_id
from shared.observability.tracing import tracer

REQUESTS = Counter("carepath_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("carepath_http_request_seconds", "HTTP request latency", ["service", "method", "route"])
# FastAPI's own OpenTelemetry spans, metrics and logs are off: their server span records the raw path and
# query (patient ids, external ids), and ours (below) covers the request with the route template only.
FASTAPI_TELEMETRY: dict[str, bool] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def route_template(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", "unmatched")  # the template (/v1/patients/{id}), never the id


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        request_id = valid_request_id(headers.get(REQUEST_ID_HEADER.lower())) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        started = time.perf_counter()
        with (
            request_id_bound(request_id),
            tracer().start_as_current_span(
                f"{method}", context=propagate.extract(headers), kind=SpanKind.SERVER
            ) as span,
        ):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = route_template(scope)
                self._record(method, route, status["code"], time.perf_counter() - started)
                self._annotate(span, method, route, status["code"])

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        REQUESTS.labels(self.service, method, route, str(status)).inc()
        LATENCY.labels(self.service, method, route).observe(seconds)

    @staticmethod
    def _annotate(span: Any, method: str, route: str, status: int) -> None:
        if not span.is_recording():
            return
        span.update_name(f"{method} {route}")
        span.set_attribute("http.request.method", method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
