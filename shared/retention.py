"""Retention of the tables that would otherwise only grow: Idempotency-Key records and finished channel
deliveries (the relay prunes the outbox and de-duplication records beside these, every 10 minutes).

Never the audit trail: `audit_event` is append-only (its triggers refuse DELETE); its retention (six years
under HIPAA §164.316) is the operator's archive, not a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from shared.db.tables import ChannelDelivery, IdempotencyRecord, table_of
from shared.db.uow import UnitOfWork
from shared.settings import Settings

# A delivery in one of these states is finished: nothing will send or retry it again.
FINISHED_DELIVERIES = ("delivered", "failed", "cancelled", "held")


@dataclass(frozen=True)
class Pruned:
    idempotency_records: int
    deliveries: int


def prune(uow: UnitOfWork, now: datetime, settings: Settings) -> Pruned:
    """Delete Idempotency-Key records older than `idempotency_retention_days` (a key re-sent after that is
    new work) and finished deliveries created more than `delivery_retention_days` ago. Pending ones stay."""
    keys = table_of(IdempotencyRecord)
    deliveries = table_of(ChannelDelivery)
    forgotten = uow.session.execute(  # type: ignore[attr-defined]  # a DML result (CursorResult) has rowcount
        delete(keys).where(keys.c.created_at < now - timedelta(days=settings.idempotency_retention_days))
    ).rowcount
    finished = uow.session.execute(  # type: ignore[attr-defined]
        delete(deliveries).where(
            deliveries.c.status.in_(FINISHED_DELIVERIES),
            deliveries.c.created_at < now - timedelta(days=settings.delivery_retention_days),
        )
    ).rowcount
    return Pruned(forgotten, finished)
