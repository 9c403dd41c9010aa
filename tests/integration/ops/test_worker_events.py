"""Flower (and `celery events`) see the distributed worker: with a network broker the worker sends task
events and worker heartbeats; with the embedded broker it sends none (nothing could read them). The
distributed test is a real `carepath worker` on Redis, read by Celery's own event receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from carepath import cli
from shared.messaging.publisher import CeleryPublisher
from shared.settings import Settings
from shared.testing import test_backend

ROOT = Path(__file__).resolve().parents[3]


def test_task_events_follow_the_broker_unless_set() -> None:
    args = cli._parser().parse_args(["worker"])
    embedded = cli.worker_argv(args, Settings(broker_url="filesystem://"))
    assert "--task-events" not in embedded and "--without-heartbeat" in embedded
    distributed = cli.worker_argv(args, Settings(broker_url="redis://127.0.0.1:6379/15"))
    assert "--task-events" in distributed and "--without-heartbeat" not in distributed
    forced_off = cli.worker_argv(args, Settings(broker_url="redis://127.0.0.1:6379/15", worker_task_events=False))
    assert "--task-events" not in forced_off and "--without-heartbeat" in forced_off


@pytest.mark.skipif(test_backend() != "pg", reason="task events need a network broker (Redis)")
def test_a_distributed_worker_sends_heartbeats_and_task_events(settings: Settings, tmp_path: Path) -> None:
    # A Redis database of its own (events are broadcast to every receiver of a database, and other test
    # runs' workers share the usual one); events of other workers are ignored by hostname.
    broker = settings.broker_url.rsplit("/", 1)[0] + "/11"
    hostname = f"events-{uuid.uuid4().hex[:8]}@localhost"
    app = Celery(broker=broker)
    seen: list[str] = []
    shown: list[str] = []
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["CAREPATH_BROKER_URL"] = broker
    command = [sys.executable, "-m", "carepath.cli", "worker", "--hostname", hostname]

    wanted = {"worker-heartbeat", "task-received", "task-started"}
    receiver: Any = None

    def on_event(event: dict[str, Any]) -> None:
        if event.get("hostname") != hostname:
            return
        seen.append(event["type"])
        if event["type"] == "task-received":
            shown.append(f"{event.get('args')} {event.get('kwargs')}")
        if wanted <= set(seen):
            receiver.should_stop = True
        if len(seen) == 1:  # a task for it (sent outside the event loop): an unknown event type, dropped
            threading.Thread(target=send_task).start()

    def send_task() -> None:  # as the relay does
        envelope = {
            "specversion": "1.0",
            "type": "carepath.unknown",
            "id": "e-1",
            "source": "t",
            "data": {"mrn": "M-9"},
        }
        CeleryPublisher(app).publish("pathway", envelope, 7)

    worker: subprocess.Popen[bytes] | None = None
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        with app.connection() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": on_event})
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
            give_up = threading.Timer(90, lambda: setattr(receiver, "should_stop", True))
            give_up.start()
            try:  # one capture: Redis delivers events to live subscribers only, none between two captures
                receiver.capture(limit=None, timeout=None, wakeup=True)
            finally:
                give_up.cancel()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    assert wanted <= set(seen), seen
    assert shown == ["[<carepath.unknown e-1>, 7] {}"]  # Flower shows the event's type and id, never its data
