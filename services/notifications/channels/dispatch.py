"""Deliver reminder events to the organisation's channels (webhook, email, escalation)."""
from __future__ import annotations

from shared.db.uow import UnitOfWork
from shared.events import Event


def handle_event(uow: UnitOfWork, event: Event) -> None:
    raise NotImplementedError
