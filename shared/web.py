"""What every HTTP service shares: /healthz, /readyz, /metrics (no PHI: route templates only), errors."""

from __future__ import annotations

import logging
import math
import re
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def _non_finite(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    """Where a body holds NaN or ±Infinity: Python's json reads them, though they are not JSON (RFC 8259),
    and neither PostgreSQL's JSON nor a 422 that echoes them can hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*loc, _UNSTORABLE.sub("?", str(key))))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*loc, index))


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


def _declared_query_names(route: Any) -> set[str]:
    """`_query_names` of the route's dependant, computed once per route (it was per request)."""
    if route is None:
        return set()
    names: set[str] | None = getattr(route, "_carepath_query_names", None)
    if names is None:
        names = _query_names(getattr(route, "dependant", None))
        route._carepath_query_names = names  # lives and dies with its route
    return names


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares (its own and its dependencies')."""
    if dependant is None:
        return set()
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


# NUL: PostgreSQL cannot store it in text or JSON. A lone UTF-16 surrogate (JSON "\ud800"): it has no UTF-8
# form, so storing it, or even echoing it in a 422, failed with a 500. No carepath value contains either.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: str) -> bool:
    return _UNSTORABLE.search(value) is not None


async def no_nul_characters(request: Request) -> None:
    """App-wide dependency (install_common): a NUL character or a lone surrogate in a path or declared query
    parameter, or anywhere in a JSON or form body (keys included), is 422; the answer names where, never
    the value."""
    found: list[tuple[str | int, ...]] = [
        ("path", name) for name, value in request.path_params.items() if _unstorable(str(value))
    ]
    if request.scope.get("query_string"):  # most requests have none: no parsing, no walk of the dependencies
        declared = _declared_query_names(request.scope.get("route"))
        found += [
            ("query", name)
            for name, value in request.query_params.multi_items()
            if name in declared and _unstorable(value)
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
        found += [loc for loc, text_value in _strings(body, ("body",)) if _unstorable(text_value)]
        if not found and (not_finite := list(_non_finite(body, ("body",)))):
            raise RequestValidationError(
                [
                    {"type": "number_not_finite", "loc": loc, "msg": "must be a finite number", "input": None}
                    for loc in not_finite
                ]
            )
    if found:
        raise RequestValidationError(
            [
                {
                    "type": "string_unstorable",
                    "loc": tuple(_UNSTORABLE.sub("?", part) if isinstance(part, str) else part for part in loc),
                    "msg": "must not contain NUL characters or unpaired UTF-16 surrogates",
                    "input": None,
                }
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

    async def validation_handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _renderable(jsonable_encoder(exc.errors()))}, status_code=422)

    app.add_exception_handler(RequestValidationError, validation_handler)


def _renderable(value: Any) -> Any:
    """A 422's echo of the input, made encodable: its rendering must never turn the 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_renderable(key): _renderable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_renderable(item) for item in value]
    return value


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
        _document_roles(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


ROLES_EXTENSION = "x-carepath-roles"


def _document_roles(app: FastAPI, schema: dict[str, Any]) -> None:
    """Each operation guarded by `shared.auth.require(...)` publishes its roles in the OpenAPI document
    (`x-carepath-roles`), read off the route's own dependency, so the document cannot drift from the code."""
    from fastapi.routing import APIRoute, iter_route_contexts

    from shared.auth import RoleRequirement

    def roles_of(dependant: Any) -> list[str]:
        for dependency in dependant.dependencies:
            if isinstance(dependency.call, RoleRequirement):
                return list(dependency.call.roles)
            if found := roles_of(dependency):
                return found
        return []

    paths = schema.get("paths", {})
    for context in iter_route_contexts(app.routes):  # included routers too (FastAPI keeps them nested)
        if not isinstance(context.original_route, APIRoute) or not context.original_route.include_in_schema:
            continue
        roles = roles_of(context.dependant)
        for method in context.methods or ():
            operation = paths.get(str(context.path), {}).get(method.lower())
            if roles and isinstance(operation, dict):
                operation[ROLES_EXTENSION] = roles


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


def unexpected_error(request: Request, exc: Exception) -> Response:
    """Any other exception is a 500 whose log line holds the route template, the exception's type and the
    code locations only: exception messages can carry submitted values (a SQL error's row, a codec's
    input), and submitted values can be clinical text or MRNs. Handled in a middleware, so neither
    Starlette's ServerErrorMiddleware nor uvicorn logs the exception (with its message) again."""
    frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)[-8:]]
    # One line (the frames are a field of it, not lines of their own): `carepath_http_requests_total`
    # counts the 500 (shared/observability/http.py).
    log.error(
        "unhandled %s in %s %s",
        type(exc).__name__,
        request.method,
        _route_template(request),
        extra={"exc_type": type(exc).__name__, "route": _route_template(request), "frames": frames},
    )
    return JSONResponse({"detail": "internal error"}, status_code=500)


def is_tls(request: Request) -> bool:
    """Whether the client reached us over TLS: the request's scheme, or a trusted proxy's X-Forwarded-Proto
    (CAREPATH_TRUST_FORWARDED_PROTO; uvicorn already rewrites the scheme for proxies in
    --forwarded-allow-ips)."""
    return _scope_is_tls(request.scope)


# Served without a token only when CAREPATH_OPEN_DOCS_AND_METRICS (default: development); else ops only.
OPERATIONS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/metrics")
HSTS = "max-age=31536000; includeSubDomains"


def _operations_gate(request: Request) -> Response | None:
    """None when the request may reach an operations path; else the 401/403 answer."""
    from shared.auth import authenticate

    if request.url.path not in OPERATIONS_PATHS or get_settings().docs_and_metrics_open:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        principal = authenticate(token.strip() if scheme.lower() == "bearer" else None)
    except StarletteHTTPException as refused:
        return JSONResponse({"detail": refused.detail}, status_code=refused.status_code, headers=refused.headers)
    if principal.role != "ops":
        return JSONResponse({"detail": "only ops may read this outside development"}, status_code=403)
    return None


_SECURITY_HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))


def _scope_is_tls(scope: Scope) -> bool:
    """`is_tls` of an ASGI scope (the middleware below has no Request)."""
    if scope.get("scheme") == "https":
        return True
    if not get_settings().trust_forwarded_proto:
        return False
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            forwarded: str = value.decode("latin-1")
            return forwarded.split(",")[0].strip().lower() == "https"
    return False


class SecurityHeadersMiddleware:
    """Pure ASGI (Starlette's BaseHTTPMiddleware, which `@app.middleware("http")` builds, costs a task, a
    memory stream and a streaming response per request): the operations gate on OPERATIONS_PATHS, the
    no-store / nosniff / HSTS headers on every answer, and any unhandled exception turned into the logged,
    PHI-free 500 of `unexpected_error`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        if scope["path"] in OPERATIONS_PATHS and (
            refused := await run_in_threadpool(_operations_gate, Request(scope, receive))
        ):
            await refused(scope, receive, self._with_headers(scope, send, {"started": False}))
            return
        state = {"started": False}
        try:
            await self.app(scope, receive, self._with_headers(scope, send, state))
        except Exception as exc:
            response = unexpected_error(Request(scope, receive), exc)
            if state["started"]:  # the answer is already on its way: it can only be cut short
                return
            await response(scope, receive, self._with_headers(scope, send, state))

    @staticmethod
    def _with_headers(scope: Scope, send: Send, state: dict[str, bool]) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
                if b"strict-transport-security" not in present and _scope_is_tls(scope):
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers


def install_common(app: FastAPI, service: str, *, database_metrics: bool = False) -> None:
    """`database_metrics`: this app's /metrics carries the database- and broker-derived gauges (one
    service only, so that a scrape of the stack sees each once: the notifications service)."""
    from fastapi import Depends

    from shared.observability.setup import install_http_observability

    app.max_body_size = MAX_BODY_BYTES
    # Every route of the app (those of routers included after this too) refuses NUL and lone surrogates.
    app.router.dependencies.append(Depends(no_nul_characters))
    _framework_errors(app)
    _database_unavailable(app)
    _document_body_errors(app)

    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "a dependency is unreachable"}})
    def readyz() -> JSONResponse:
        from shared.observability.setup import configuration_ready

        checks = {"database": database_ready(), "broker": broker_ready(), "configuration": configuration_ready()}
        ok = all(checks.values())
        body = {"status": "ok" if ok else "unavailable", **{k: "ok" if v else "down" for k, v in checks.items()}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    install_http_observability(app, service, database_metrics=database_metrics)  # the outermost middleware
