"""The Celery worker's observability: task outcomes and durations (signals, in the pool's child processes:
multi-process metrics), the worker heartbeat (a timer on the consumer's event loop: it stops when the
loop is stuck), and the request id of the event a task handles on its log lines."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from celery import Celery, bootsteps
from celery.signals import setup_logging, task_postrun, task_prerun

from shared.observability.metrics import TASK_SECONDS, TASKS, beat
from shared.settings import get_settings

HEARTBEAT_EVERY_SECONDS = 5.0
_started: dict[str, float] = {}


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _on_postrun(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    name = getattr(task, "name", "unknown")
    started = _started.pop(task_id or "", None)
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)
    if state == "SUCCESS":
        outcome = retval if retval in ("handled", "duplicate", "parked") else "success"
    else:
        outcome = (state or "unknown").lower()
    TASKS.labels(name, outcome).inc()


def _keep_our_logging(**_: Any) -> None:
    """A receiver of `setup_logging` stops Celery from configuring logging itself."""


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Beats every few seconds from the consumer's timer (`carepath health worker`)."""

    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        beat("worker")
        self.tref = parent.timer.call_repeatedly(HEARTBEAT_EVERY_SECONDS, beat, ("worker",))

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


def _say_as_json(msg: str, f: Any = None) -> None:
    """Celery's shutdown notices (printed from signal handlers) as JSON lines: one write, no locks."""
    line = {"event": msg, "level": "info", "logger": "celery.apps.worker", "timestamp": _now(), "part": "worker"}
    os.write(2, (json.dumps(line) + "\n").encode())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def instrument(app: Celery) -> None:
    if get_settings().json_logs:
        from celery.apps import worker as celery_worker

        celery_worker.safe_say = _say_as_json
    app.steps["consumer"].add(Heartbeat)
    setup_logging.connect(_keep_our_logging, weak=False)  # Celery logs through our root handler
    task_prerun.connect(_on_prerun, weak=False)
    task_postrun.connect(_on_postrun, weak=False)
