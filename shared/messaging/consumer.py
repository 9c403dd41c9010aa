"""Consumer side of the outbox: each (source, event id) is handled once per consumer, and the outbox row
is finished in the same transaction as the consumer's effects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from shared.clock import utcnow
from shared.db.tables import OutboxMessage, ProcessedEvent, table_of
from shared.db.uow import UnitOfWork
from shared.events import Event, from_envelope
from shared.messaging import deadletter
from shared.messaging.routing import consumers_for
from shared.observability.context import REQUEST_ID_ATTRIBUTE, request_id_bound
from shared.observability.tracing import event_span
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.consumer")

Handler = Callable[[UnitOfWork, Event], None]


def _already_processed(uow: UnitOfWork, consumer: str, event: Event) -> bool:
    return (
        uow.session.execute(
            select(col(ProcessedEvent.event_id)).where(
                col(ProcessedEvent.consumer) == consumer,
                col(ProcessedEvent.source) == event.source,
                col(ProcessedEvent.event_id) == event.id,
            )
        ).first()
        is not None
    )


def _finish_outbox_row(uow: UnitOfWork, outbox_id: int | None, consumer: str, event: Event) -> None:
    if outbox_id is None:
        return
    table = table_of(OutboxMessage)
    uow.session.execute(
        update(table)
        .where(
            table.c.id == outbox_id,
            table.c.event_id == event.id,
            table.c.consumer == consumer,
            table.c.done_at.is_(None),
        )
        .values(done_at=utcnow())
    )


def consume(
    consumer: str,
    envelope: dict[str, Any],
    outbox_id: int | None,
    handler: Handler,
    settings: Settings | None = None,
) -> str:
    """Run `handler` once for this event; returns "handled", "duplicate" or "parked" (a poison message:
    shared/messaging/deadletter.py). A failure that is not yet parked is raised: the outbox row stays
    unfinished and the relay delivers the event again after its lease. The event's request id is on the
    log lines meanwhile, and its trace continues in a consumer span (events it publishes carry both on)."""
    request_id = envelope.get(REQUEST_ID_ATTRIBUTE) if isinstance(envelope, dict) else None
    with (
        request_id_bound(request_id if isinstance(request_id, str) else None),
        event_span(
            f"consume {consumer}",
            envelope if isinstance(envelope, dict) else {},
            SpanKind.CONSUMER,
            **{"messaging.consumer": consumer},
        ) as span,
    ):
        outcome = _consume(consumer, envelope, outbox_id, handler, settings)
        span.set_attribute("carepath.outcome", outcome)
        return outcome


def _consume(
    consumer: str,
    envelope: dict[str, Any],
    outbox_id: int | None,
    handler: Handler,
    settings: Settings | None = None,
) -> str:
    try:
        event = from_envelope(envelope)
    except Exception as exc:  # not a CloudEvent of ours: no retry can help
        deadletter.record_failure(consumer, envelope, outbox_id, exc, reason=deadletter.MALFORMED, settings=settings)
        return "parked"
    if consumer not in consumers_for(event.type):
        unknown = LookupError(f"event type {event.type!r} is not consumed by {consumer!r}")
        deadletter.record_failure(
            consumer,
            envelope,
            outbox_id,
            unknown,
            reason=deadletter.UNKNOWN_TYPE,
            event_type=event.type,
            settings=settings,
        )
        return "parked"
    try:
        return _consume_once(consumer, event, outbox_id, handler, settings)
    except Exception as exc:
        if deadletter.is_transient(exc):
            raise
        if deadletter.record_failure(consumer, envelope, outbox_id, exc, event_type=event.type, settings=settings):
            return "parked"
        raise


def _settled(consumer: str, event: Event, outbox_id: int | None, settings: Settings | None) -> bool:
    """Recorded already and its outbox row finished: a duplicate that needs no write at all (a read
    transaction: on SQLite no write lock and no fsync, the embedded default's scarce resource).

    SQLite only. On PostgreSQL a write transaction takes no database-wide lock, duplicates are rare (the
    relay defers the update events an evaluation covers: shared/messaging/relay.py), and this extra
    transaction (two round trips and a pooled-connection checkout) was 15 % of the worker's time per
    delivery in the steady profile (docs/performance.md); the write transaction checks the same thing."""
    if not (settings or get_settings()).is_sqlite:
        return False
    with UnitOfWork(settings, read_only=True) as uow:
        if not _already_processed(uow, consumer, event):
            return False
        if outbox_id is None:
            return True
        table = table_of(OutboxMessage)
        row = uow.session.execute(select(table.c.done_at).where(table.c.id == outbox_id)).first()
        return row is None or row.done_at is not None


def _consume_once(
    consumer: str, event: Event, outbox_id: int | None, handler: Handler, settings: Settings | None
) -> str:
    if _settled(consumer, event, outbox_id, settings):
        return "duplicate"
    try:
        with UnitOfWork(settings) as uow:
            if _already_processed(uow, consumer, event):
                _finish_outbox_row(uow, outbox_id, consumer, event)
                uow.commit()
                return "duplicate"
            uow.session.add(
                ProcessedEvent(consumer=consumer, source=event.source, event_id=event.id, processed_at=utcnow())
            )
            uow.session.flush()
            handler(uow, event)
            _finish_outbox_row(uow, outbox_id, consumer, event)
            uow.commit()
            return "handled"
    except IntegrityError:
        # A concurrent delivery of the same event recorded it first (PostgreSQL): that one did the work.
        with UnitOfWork(settings) as uow:
            if not _already_processed(uow, consumer, event):
                raise
            _finish_outbox_row(uow, outbox_id, consumer, event)
            uow.commit()
        log.info("duplicate delivery of event %s to %s skipped", event.id, consumer)
        return "duplicate"
