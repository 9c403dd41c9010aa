"""Celery app factory. The broker is a doorbell; durability lives in the database outbox."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from shared.files import private_dir
from shared.messaging.routing import CONSUMERS, QUEUES
from shared.settings import Settings, get_settings

EMBEDDED_TRANSPORT = "shared.messaging.fs_transport:Transport"  # filesystem://, with atomic writes


def _broker_options(settings: Settings) -> dict[str, Any]:
    if settings.is_embedded_broker:
        root = settings.var_dir.resolve() / "broker"
        for folder in (settings.var_dir.resolve(), root, root / "data", root / "control"):
            private_dir(folder)  # 0700: the messages carry patient ids (files inside follow the umask)
        return {
            "data_folder_in": str(root / "data"),
            "data_folder_out": str(root / "data"),
            "control_folder": str(root / "control"),
            "polling_interval": 0.1,
        }
    if settings.broker_url.startswith("redis"):
        # A task whose worker died comes back after this (not the default hour); the outbox lease
        # republishes sooner anyway. Above the task hard time limit (300 s), or a long task still running
        # would be handed to a second worker (tests/integration/spine/test_durability_settings.py).
        return {"visibility_timeout": 600, "unacked_restore_interval": 10}
    return {}


def create_celery(settings: Settings | None = None, include: Sequence[str] = ()) -> Celery:
    """The Celery app for these settings. `include` names the task modules a worker imports; only the
    composition root (carepath/cli.py) knows them, so publishers and health checks pass none."""
    settings = settings or get_settings()
    app = Celery("carepath", broker=settings.broker_url, include=list(include))
    exchange = Exchange("carepath", type="direct")
    if settings.is_embedded_broker:
        app.conf.broker_transport = EMBEDDED_TRANSPORT
    app.conf.update(
        broker_transport_options=_broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="pathway",
        task_queues=[Queue(name, exchange, routing_key=name) for name in QUEUES],
        task_routes={task: {"queue": queue, "routing_key": queue} for task, queue in CONSUMERS.values()},
        task_default_exchange="carepath",
        task_default_routing_key="pathway",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_time_limit=300,
        task_soft_time_limit=240,
        broker_pool_limit=4,
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return create_celery()
