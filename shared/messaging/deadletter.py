"""Poison messages: an event a consumer fails on `dead_letter_after` times (or one it can never handle) is
parked in `dead_letter` with its error, its outbox row finished, so the relay stops republishing it and
every other event keeps flowing. `carepath events retry ID` puts it back on the outbox.

Transient failures (the database unreachable, a connection cut) are not the event's fault: they are never
counted, only retried."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import col

from shared.clock import utcnow
from shared.db.tables import DeadLetter, OutboxMessage, table_of
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.deadletter")

HANDLER_FAILED, MALFORMED, UNKNOWN_TYPE = "handler_failed", "malformed", "unknown_type"


class NotRetryable(ValueError):
    """The parked message has no outbox row to replay (it never was an event of ours)."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def event_key(envelope: Any) -> str:
    given = envelope.get("id") if isinstance(envelope, dict) else None
    if isinstance(given, str) and 0 < len(given) <= 64:
        return given
    body = json.dumps(envelope, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()[:57]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _finish(uow: UnitOfWork, outbox_id: int | None, consumer: str, now: datetime) -> None:
    if outbox_id is None:
        return
    table = table_of(OutboxMessage)
    uow.session.execute(
        update(table)
        .where(table.c.id == outbox_id, table.c.consumer == consumer, table.c.done_at.is_(None))
        .values(done_at=now)
    )


def record_failure(
    consumer: str,
    envelope: Any,
    outbox_id: int | None,
    exc: BaseException,
    *,
    reason: str = HANDLER_FAILED,
    event_type: str | None = None,
    settings: Settings | None = None,
) -> bool:
    """Count one failure in its own transaction; park the event (True) at the threshold, or at once when
    no retry can help (malformed, unknown type)."""
    settings = settings or get_settings()
    now, key = utcnow(), event_key(envelope)
    with UnitOfWork(settings) as uow:
        row = uow.session.execute(
            select(DeadLetter).where(col(DeadLetter.consumer) == consumer, col(DeadLetter.event_key) == key)
        ).scalar_one_or_none()
        if row is None:
            row = DeadLetter(
                consumer=consumer,
                event_key=key,
                envelope=envelope if isinstance(envelope, dict) else {"raw": str(envelope)[:10_000]},
                reason=reason,
                error="",
                first_failed_at=now,
                last_failed_at=now,
            )
            uow.session.add(row)
        elif row.parked_at is not None and row.retried_at is None:
            # Already parked: another copy of it (the relay republished before the first was handled). Not a
            # new failure: keep the count, make sure its outbox row stays finished.
            _finish(uow, outbox_id, consumer, now)
            uow.commit()
            return True
        elif row.retried_at is not None:  # failing again after a replay: count afresh
            row.attempts, row.parked_at, row.retried_at = 0, None, None
        row.attempts += 1
        row.reason, row.error, row.last_failed_at = reason, _error(exc), now
        row.event_type, row.outbox_id = event_type, outbox_id if outbox_id is not None else row.outbox_id
        parked = reason != HANDLER_FAILED or row.attempts >= settings.dead_letter_after
        if parked:
            row.parked_at = now
            _finish(uow, outbox_id, consumer, now)
        uow.commit()
    if parked:
        log.error(
            "event %s parked for consumer %s after %d attempts (%s: %s)",
            key,
            consumer,
            row.attempts,
            reason,
            type(exc).__name__,
        )
    return parked


def parked(settings: Settings | None = None) -> list[DeadLetter]:
    with UnitOfWork(settings, read_only=True) as uow:
        query = (
            select(DeadLetter)
            .where(col(DeadLetter.parked_at).is_not(None), col(DeadLetter.retried_at).is_(None))
            .order_by(col(DeadLetter.id))
        )
        rows = list(uow.session.execute(query).scalars())
        uow.session.expunge_all()  # plain values for the caller once the unit of work has ended
        return rows


def retry(dead_letter_id: int, settings: Settings | None = None) -> DeadLetter:
    """Put a parked event back on its outbox row (the relay publishes it again)."""
    now = utcnow()
    with UnitOfWork(settings) as uow:
        row = uow.session.get(DeadLetter, dead_letter_id)
        if row is None or row.parked_at is None or row.retried_at is not None:
            raise LookupError(f"no parked event with id {dead_letter_id}")
        if row.outbox_id is None:
            raise NotRetryable("this message is not an event of ours (nothing in the outbox to replay)")
        table = table_of(OutboxMessage)
        uow.session.execute(
            update(table).where(table.c.id == row.outbox_id).values(done_at=None, available_at=now, attempts=0)
        )
        row.retried_at = now
        uow.commit()
        uow.session.expunge(row)
        return row
