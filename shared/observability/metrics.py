"""The process-level Prometheus metrics of every part, and the registry each /metrics serves.

Multi-process scheme: with PROMETHEUS_MULTIPROC_DIR set (prometheus-client's documented multiprocess
mode; `carepath up` sets it to var/metrics for all its children, compose to a folder per container), every
process (Celery's prefork children too) writes its samples to files there and a scrape aggregates them.
`carepath up`'s notifications /metrics therefore carries the worker's, relay's and scheduler's metrics; in
a distributed deployment the worker, relay and scheduler serve theirs on CAREPATH_METRICS_PORT.
Labels hold services, route templates, consumers, queues, loops, kinds and outcomes only: never an id or PHI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("carepath.metrics")

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LATENESS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

TASKS = Counter("carepath_tasks_total", "Celery tasks run, by task and outcome", ["task", "outcome"])
TASK_SECONDS = Histogram("carepath_task_seconds", "Celery task duration", ["task"], buckets=_SECONDS)
EVALUATIONS = Counter("carepath_pathway_evaluations_total", "patient evaluations by the pathway worker", ["trigger"])
UPDATES_EVALUATED = Counter(
    "carepath_pathway_updates_evaluated_total", "patient updates newly included by an evaluation (coalesced)"
)
UPDATES_PER_EVALUATION = Histogram(
    "carepath_pathway_updates_per_evaluation",
    "patient updates newly included by one evaluation (>1: updates coalesced into one evaluation)",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100),
)
UPDATES_COALESCED = Counter(
    "carepath_updates_coalesced_total",
    "patient updates whose own event needed no evaluation: an evaluation of the patient already covered them",
)
REMINDERS_DELIVERED = Counter("carepath_reminders_delivered_total", "reminders the scheduler delivered (due)")
REMINDER_LATENESS = Histogram(
    "carepath_reminder_lateness_seconds", "delivered_at - due_at of each delivered reminder", buckets=_LATENESS
)
ESCALATIONS = Counter("carepath_reminders_escalated_total", "reminders escalated (due and unacknowledged too long)")
DELIVERIES = Counter(
    "carepath_channel_deliveries_total", "webhook/email delivery attempts by outcome", ["channel", "outcome"]
)
HEARTBEAT = Gauge(
    "carepath_loop_heartbeat_timestamp_seconds",
    "unix time of the last pass of a loop (relay, scheduler loops, worker)",
    ["loop"],
    multiprocess_mode="max",
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Forward(Collector):
    """The process-wide default registry, as one collector of a per-app registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def process_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """What a scrape of this process shows: every process's samples in multi-process mode (else this
    process's), plus `extra` collectors (the database-derived gauges are given to notifications only)."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward())
    for collector in extra:
        registry.register(collector)
    return registry


def serve_metrics(port: int | None) -> None:
    """A metrics port for a process without HTTP (worker, relay, scheduler); none when `port` is unset."""
    if port:
        start_http_server(port, addr=os.environ.get("CAREPATH_METRICS_HOST", "0.0.0.0"), registry=process_registry())
        log.info("metrics on port %s", port)


def beat(loop: str) -> None:
    """A loop finished a pass: the heartbeat gauge and the heartbeat file `carepath health` reads."""
    from shared.observability.heartbeat import touch

    now = time.time()
    HEARTBEAT.labels(loop).set(now)
    touch(loop, now)


class BrokerCollector(Collector):
    """Messages waiting in each queue, read from the broker at scrape time (Redis: LLEN of the queue's
    lists; embedded: the folder's message files; AMQP: the queue's message count)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from shared.messaging.celery_app import get_celery
        from shared.messaging.routing import QUEUES

        depth = GaugeMetricFamily("carepath_broker_queue_depth", "messages waiting in a broker queue", labels=["queue"])
        try:
            with get_celery().connection_for_read() as connection:
                channel = connection.default_channel
                for queue in QUEUES:
                    depth.add_metric([queue], _queue_size(channel, queue))
        except Exception:  # a scrape must not fail because the broker is down: /readyz says so
            log.warning("broker queue depth unavailable", exc_info=True)
            return
        yield depth


def _queue_size(channel: object, queue: str) -> int:
    size = getattr(channel, "_size", None)  # kombu's virtual transports: Redis LLEN, folder file count
    if size is not None:
        return int(size(queue))
    _, count, _ = channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
    return int(count)
