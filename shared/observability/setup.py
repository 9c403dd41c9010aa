"""Wiring of observability into a process (`setup_process`, called by the `carepath` command) and into
an HTTP app (`install_http_observability`, called by shared.web.install_common)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from shared.settings import get_settings

# Parts without HTTP: their metrics are served on CAREPATH_METRICS_PORT, their loops beat heartbeats.
BACKGROUND_PARTS = ("worker", "relay", "scheduler")


def setup_process(part: str) -> None:
    """Logs, heartbeats, tracing and metrics of this process, before it imports prometheus-client: the
    multi-process mode is chosen at that import. A worker (prefork: several processes) without
    PROMETHEUS_MULTIPROC_DIR gets a private folder of its own, so its pool's samples are aggregated."""
    from shared.observability.logs import configure_logging

    configure_logging(part)
    if part not in BACKGROUND_PARTS + ("intake", "notifications"):
        return
    if part == "worker" and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        private = tempfile.mkdtemp(prefix="carepath-worker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = private
        atexit.register(shutil.rmtree, private, ignore_errors=True)
    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    from shared.observability import heartbeat
    from shared.observability.metrics import serve_metrics
    from shared.observability.tracing import configure_tracing

    heartbeat.set_part(part)
    configure_tracing(part)
    if part in BACKGROUND_PARTS:
        heartbeat.forget_dead(part)
        serve_metrics(get_settings().metrics_port)


def configuration_problem() -> str | None:
    """Why the settings do not let this process serve, or None: it must sign (CSRF) and verify tokens, and
    outside development have the opioid value sets (FHIR ingestion, CDS order review)."""
    from shared import token_keys
    from shared.fhir import terminology

    settings = get_settings()
    try:
        settings.signing_key()
        token_keys.keys(settings)
        if settings.env != "development":
            terminology.configured(settings)
    except RuntimeError as problem:
        return str(problem)
    return None


def configuration_ready() -> bool:
    return configuration_problem() is None


def install_http_observability(app: Any, service: str, *, database_metrics: bool) -> None:
    from shared.observability.http import ObservabilityMiddleware
    from shared.observability.metrics import BrokerCollector, process_registry
    from shared.observability.tracing import configure_tracing
    from shared.ops_metrics import BacklogCollector

    configure_tracing(service)
    extra = [BacklogCollector(), BrokerCollector()] if database_metrics else []
    app.state.metrics_registry = process_registry(extra)
    app.add_middleware(ObservabilityMiddleware, service=service)
