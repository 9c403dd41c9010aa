"""The port the relay publishes through, its Celery adapter and the official in-memory fake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.messaging.routing import CONSUMERS


class Publisher(Protocol):
    def publish(self, consumer: str, envelope: dict[str, Any], outbox_id: int) -> None: ...


class CeleryPublisher:
    def __init__(self, app: Any) -> None:
        self.app = app

    def publish(self, consumer: str, envelope: dict[str, Any], outbox_id: int) -> None:
        task_name, queue = CONSUMERS[consumer]
        # What task events (Flower, `celery events`) and Celery's logs show of the arguments: the event's
        # type and id only, never its data.
        shown = f"[<{envelope.get('type')} {envelope.get('id')}>, {outbox_id}]"
        self.app.send_task(
            task_name, args=[envelope, outbox_id], queue=queue, routing_key=queue, argsrepr=shown, kwargsrepr="{}"
        )


@dataclass
class InMemoryPublisher:
    """Records what was published; tests drain it into consumers by hand."""

    sent: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)

    def publish(self, consumer: str, envelope: dict[str, Any], outbox_id: int) -> None:
        self.sent.append((consumer, envelope, outbox_id))

    def drain(self) -> list[tuple[str, dict[str, Any], int]]:
        sent, self.sent = self.sent, []
        return sent
