"""Reconcile reminders with the pathway's desired deadline set (pathway-spec.md §3)."""
from __future__ import annotations

from shared.db.uow import UnitOfWork
from shared.events import Event


def handle_event(uow: UnitOfWork, event: Event) -> None:
    raise NotImplementedError
