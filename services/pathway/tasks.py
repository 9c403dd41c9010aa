"""Celery tasks of the pathway worker (thin: parse, call one handler)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shared.messaging.consumer import consume
from shared.messaging.routing import PATHWAY


@shared_task(name="carepath.pathway.consume")
def consume_pathway(envelope: dict[str, Any], outbox_id: int | None = None) -> str:
    from services.pathway.consumer import handle_event

    return consume(PATHWAY, envelope, outbox_id, handle_event)
