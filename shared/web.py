"""What every HTTP service shares: /healthz, /readyz, /metrics (no PHI: route templates only), errors."""
from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text

from shared.db.engine import get_engine
from shared.messaging.celery_app import get_celery
from shared.settings import get_settings

log = logging.getLogger("carepath.web")

REQUESTS = Counter(
    "carepath_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
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


def install_common(app: FastAPI, service: str) -> None:
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

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
