"""The embedded broker (filesystem transport) under a concurrent producer and consumer: every message
arrives whole. Upstream kombu's transport let a consumer read a half-written file, and Celery then stopped
the worker with an unrecoverable JSONDecodeError."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kombu import Connection

from shared.messaging.celery_app import EMBEDDED_TRANSPORT

pytestmark = pytest.mark.integration
MESSAGES = 600


def _connection(root: Path) -> Connection:
    for folder in ("data", "control"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(root / "data"),
        "data_folder_out": str(root / "data"),
        "control_folder": str(root / "control"),
        "polling_interval": 0.001,
    }
    return Connection("filesystem://", transport=EMBEDDED_TRANSPORT, transport_options=options)


def test_consumer_never_sees_a_partial_message(tmp_path: Path) -> None:
    payload = {"blob": "x" * 200_000}  # large enough that a write is not one syscall's worth
    received: list[dict] = []
    errors: list[BaseException] = []

    def consume() -> None:
        with _connection(tmp_path) as connection:
            queue = connection.SimpleQueue("pathway")
            try:
                while len(received) < MESSAGES:
                    message = queue.get(timeout=30)
                    received.append(message.payload)
                    message.ack()
            except BaseException as error:
                errors.append(error)

    with _connection(tmp_path) as connection:
        # Bound before the consumer starts: kombu keeps declared bindings per process, so two threads of one
        # process declaring at once is a test artefact (the relay and the worker are separate processes).
        queue = connection.SimpleQueue("pathway")
        consumer = threading.Thread(target=consume)
        consumer.start()
        for n in range(MESSAGES):
            queue.put({**payload, "n": n})
    consumer.join(120)
    assert not errors, errors[0]
    assert sorted(m["n"] for m in received) == list(range(MESSAGES))
    assert all(len(m["blob"]) == 200_000 for m in received)
