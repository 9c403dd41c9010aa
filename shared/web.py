"""What every HTTP service shares: /healthz, /readyz, /metrics (no PHI: route templates only), errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.db.engine import get_engine
from shared.messaging.celery_app import get_celery
from shared.settings import get_settings

log = logging.getLogger("carepath.web")

# Largest request body any route accepts (a what-if of 2,000 updates is well below): larger is 413.
# OpenAPI `responses=` of a route: status -> {"description": ...}
Responses = dict[int | str, dict[str, Any]]

MAX_BODY_BYTES = 4 * 1024 * 1024
# Instants outside these years are refused (422): nothing clinical happens there, and near the ends of
# Python's calendar converting to UTC or adding a deadline overflows.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

REQUESTS = Counter("carepath_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("carepath_http_request_seconds", "HTTP request latency", ["service", "method", "route"])


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")  # the template (/v1/patients/{id}), never the id


def database_ready() -> bool:
    try:
        with get_engine(get_settings().effective_database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("readiness: database unreachable", exc_info=True)
        return False


def broker_ready() -> bool:
    try:
        with get_celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        log.warning("readiness: broker unreachable", exc_info=True)
        return False


def invalid(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 in FastAPI's own shape ({"detail": [{"type", "loc", "msg"}]}) for checks made in a route."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": None}])


def check_instant(value: datetime | None, loc: tuple[str | int, ...]) -> None:
    """422 unless `value` (aware) lies in [EARLIEST, LATEST)."""
    if value is None:
        return
    try:
        in_range = EARLIEST <= value < LATEST
    except OverflowError:  # an offset that pushes the instant past year 1 or 9999
        in_range = False
    if not in_range:
        raise invalid(loc, f"must be between {EARLIEST.year} and {LATEST.year - 1} (UTC)", "datetime_range")


def _strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, loc)
            yield from _strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares (its own and its dependencies')."""
    if dependant is None:
        return set()
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def no_nul_characters(request: Request) -> None:
    """Router dependency: a NUL character in a path or declared query parameter, or anywhere in a JSON or
    form body, is 422. PostgreSQL cannot store NUL in text or JSON, and no carepath value contains one."""
    found: list[tuple[str | int, ...]] = [
        ("path", name) for name, value in request.path_params.items() if "\x00" in str(value)
    ]
    declared = _query_names(getattr(request.scope.get("route"), "dependant", None))
    found += [
        ("query", name) for name, value in request.query_params.multi_items() if name in declared and "\x00" in value
    ]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in ("POST", "PUT", "PATCH"):
        body: Any = None
        # Only bodies FastAPI itself parsed (and cached); any other body fails the route's validation.
        if content_type == "application/json" or (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            try:
                body = await request.json()
            except (ValueError, RecursionError):
                body = None
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            body = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        found += [loc for loc, text_value in _strings(body, ("body",)) if "\x00" in text_value]
    if found:
        raise RequestValidationError(
            [
                {"type": "string_nul", "loc": loc, "msg": "must not contain NUL characters", "input": None}
                for loc in found
            ]
        )


def _allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """The methods some route of `app` takes on the scope's path (routes may sit in included routers)."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes)
    ]


def _framework_errors(app: FastAPI) -> None:
    """Two corrections to the framework's own error answers:

    - FastAPI answers 400 to a body it cannot decode (bytes that are not UTF-8, broken multipart). The
      contract's answer to bad input is 422, and no carepath route answers 400 itself.
    - Starlette's 405 names only the methods of the first route on the path (`Allow: GET` where PUT is
      another route on the same path); it must list them all.
    """

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "body_unparsable",
                            "loc": ["body"],
                            "msg": f"the request body could not be parsed ({exc.detail})",
                        }
                    ]
                },
                status_code=422,
            )
        if exc.status_code == 405 and (allowed := _allowed_methods(app, dict(request.scope))):
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handler)


def _document_body_errors(app: FastAPI) -> None:
    """Every operation that takes a body may answer 413 (too large) and 422 (unparsable): say so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    responses = operation.setdefault("responses", {})
                    responses.setdefault("413", {"description": f"body larger than {MAX_BODY_BYTES} bytes"})
                    responses.setdefault("422", {"description": "the body could not be parsed or is invalid"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _database_unavailable(app: FastAPI) -> None:
    """The database unreachable (or a connection lost mid-request) is 503 with Retry-After, not a bare 500:
    nothing was stored, and the client may retry (with its Idempotency-Key)."""

    async def handler(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable for %s %s", request.method, _route_template(request))
        return JSONResponse(
            {"detail": "the database is unavailable; nothing was stored, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(OperationalError, handler)


def install_common(app: FastAPI, service: str) -> None:
    from shared.ops_metrics import register_backlog_metrics

    register_backlog_metrics()
    app.max_body_size = MAX_BODY_BYTES
    _framework_errors(app)
    _database_unavailable(app)
    _document_body_errors(app)

    @app.middleware("http")
    async def _metrics(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
        LATENCY.labels(service, request.method, route).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "a dependency is unreachable"}})
    def readyz() -> JSONResponse:
        checks = {"database": database_ready(), "broker": broker_ready()}
        ok = all(checks.values())
        body = {"status": "ok" if ok else "unavailable", **{k: "ok" if v else "down" for k, v in checks.items()}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
