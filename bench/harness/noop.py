"""The ceiling for the pathway worker: a Celery task that does nothing, on the same broker with carepath's
own Celery configuration (create_celery: acks late, prefetch 1, the same transport options). Each run
appends its finish time to a file of its process, so the harness can time the drain without a result
backend.

    python -m celery -A bench.harness.noop worker --queues bench-noop --concurrency 1
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from kombu import Queue

from shared.messaging.celery_app import create_celery


def make_app() -> Celery:
    app = create_celery()
    app.conf.task_queues = [*app.conf.task_queues, Queue("bench-noop", routing_key="bench-noop")]
    app.conf.task_routes = {"bench.noop": {"queue": "bench-noop", "routing_key": "bench-noop"}}

    @app.task(name="bench.noop")
    def noop(n: int) -> None:
        done = Path(os.environ.get("CAREPATH_BENCH_NOOP_DIR", "."))
        with open(done / f"done-{os.getpid()}.txt", "a") as out:
            out.write(f"{time.time():.6f}\n")

    return app


app = make_app()
