"""Celery tasks of the notifications service (thin: parse, call one handler)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shared.messaging.consumer import consume
from shared.messaging.routing import CHANNELS, NOTIFICATIONS


@shared_task(name="carepath.notifications.consume")
def consume_notifications(envelope: dict[str, Any], outbox_id: int | None = None) -> str:
    from services.notifications.reconcile import handle_event

    return consume(NOTIFICATIONS, envelope, outbox_id, handle_event)


@shared_task(name="carepath.channels.consume")
def consume_channels(envelope: dict[str, Any], outbox_id: int | None = None) -> str:
    from services.notifications.channels.dispatch import handle_event

    return consume(CHANNELS, envelope, outbox_id, handle_event)
