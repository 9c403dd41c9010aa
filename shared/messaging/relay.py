"""The outbox relay: publishes unfinished outbox rows at least once.

A row is claimed by pushing its `available_at` one lease into the future, then published. It stays
unfinished until its consumer records the event (consumer.py sets `done_at`); if that never happens
(lost by the broker, worker killed) the lease runs out and the row is published again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import ColumnElement, Table, and_, delete, exists, not_, select, update

from shared.clock import utcnow
from shared.db.claims import claim_rows
from shared.db.tables import OutboxMessage, ProcessedEvent, table_of
from shared.db.uow import UnitOfWork
from shared.events import PATIENT_UPDATED
from shared.messaging.publisher import Publisher
from shared.messaging.routing import PATHWAY
from shared.observability.metrics import beat
from shared.observability.tracing import event_span, inject
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.relay")
MAX_BACKOFF_FACTOR = 16
RETRY_AFTER_PUBLISH_ERROR = timedelta(seconds=2)
PRUNE_EVERY_SECONDS = 600.0


@dataclass(frozen=True)
class Claimed:
    id: int
    consumer: str
    envelope: dict[str, Any]


def _lease_until(now: datetime, attempts: int, lease_seconds: float) -> datetime:
    factor = min(2 ** max(attempts - 1, 0), MAX_BACKOFF_FACTOR)
    return now + timedelta(seconds=lease_seconds * factor)


def _covered_later(table: Table) -> ColumnElement[bool]:
    """A pathway update row with an earlier unfinished pathway update row of the same patient: deferred.

    The earlier row's evaluation (services/pathway/coalescing.py) covers every update committed before it
    reads the patient's facts, so publishing this row would deliver an event that is then only acknowledged.
    Left unclaimed (available_at unchanged), it is either finished by that evaluation or, when committed
    after the evaluation read the facts, claimed on the first pass after that evaluation commits (the
    earlier row is then done). The earliest unfinished row of a patient is never deferred, so a lost or
    killed evaluation falls back to its lease as before and nothing waits for ever (a parked row is done).
    Only the earliest unfinished row per patient is claimed in one batch. Index: consumer, subject, done_at.
    """
    earlier = table.alias("earlier")
    return and_(
        table.c.consumer == PATHWAY,
        table.c.event_type == PATIENT_UPDATED,
        exists(
            select(earlier.c.id).where(
                earlier.c.consumer == PATHWAY,
                earlier.c.subject == table.c.subject,
                earlier.c.done_at.is_(None),
                earlier.c.event_type == PATIENT_UPDATED,
                earlier.c.id < table.c.id,
            )
        ),
    )


def claim_batch(uow: UnitOfWork, now: datetime, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to `limit` publishable rows (several relays may run: see shared.db.claims), except the
    pathway update events an evaluation already queued will cover (_covered_later)."""
    table = table_of(OutboxMessage)
    rows = claim_rows(
        uow,
        table,
        condition=(table.c.done_at.is_(None)) & (table.c.available_at <= now) & not_(_covered_later(table)),
        order_by=table.c.id,
        limit=limit,
        values={
            "attempts": table.c.attempts + 1,
            "published_at": now,
            "available_at": now + timedelta(seconds=lease_seconds),
        },
        returning=(table.c.id, table.c.consumer, table.c.envelope, table.c.attempts),
    )
    for row in rows:
        if row.attempts > 1:  # republished: back off so a long backlog is not flooded with copies
            uow.session.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(available_at=_lease_until(now, row.attempts, lease_seconds))
            )
    return sorted((Claimed(row.id, row.consumer, row.envelope) for row in rows), key=lambda c: c.id)


def _release_for_retry(settings: Settings, ids: list[int]) -> None:
    """Retry soon, and take back the claim's attempt: a message the broker never accepted was not
    delivered, so it must not lengthen the lease of the next, real delivery (a broker or disk outage of a
    few seconds would otherwise leave a message its consumer then loses waiting up to 16 leases)."""
    with UnitOfWork(settings) as uow:
        table = table_of(OutboxMessage)
        uow.session.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.done_at.is_(None))
            .values(available_at=utcnow() + RETRY_AFTER_PUBLISH_ERROR, attempts=table.c.attempts - 1)
        )
        uow.commit()


def _publish(publisher: Publisher, message: Claimed) -> None:
    """Publish in a producer span that continues the event's trace; the message carries that span's
    context (the row keeps the original: a republish starts from the same parent)."""
    with event_span(
        f"publish {message.consumer}", message.envelope, SpanKind.PRODUCER, **{"messaging.consumer": message.consumer}
    ):
        envelope = dict(message.envelope)
        inject(envelope)
        publisher.publish(message.consumer, envelope, message.id)


def relay_once(publisher: Publisher, settings: Settings | None = None) -> int:
    """Claim and publish one batch; returns how many rows were published."""
    settings = settings or get_settings()
    with UnitOfWork(settings) as uow:
        claimed = claim_batch(uow, utcnow(), settings.relay_batch, settings.relay_lease_seconds)
        uow.commit()
    failed: list[int] = []
    for message in claimed:
        try:
            _publish(publisher, message)
        except Exception:  # broker down: the row is retried soon, nothing is lost
            log.warning("publish failed for outbox row %s; will retry", message.id, exc_info=True)
            failed.append(message.id)
    if failed:
        _release_for_retry(settings, failed)
    return len(claimed) - len(failed)


def prune(uow: UnitOfWork, now: datetime, settings: Settings) -> tuple[int, int]:
    """Delete finished outbox rows and old de-duplication records (the tables would otherwise only grow)."""
    outbox = table_of(OutboxMessage)
    dedupe = table_of(ProcessedEvent)
    finished = uow.session.execute(  # type: ignore[attr-defined]  # a DML result (CursorResult) has rowcount
        delete(outbox).where(
            outbox.c.done_at.is_not(None), outbox.c.done_at < now - timedelta(days=settings.outbox_retention_days)
        )
    ).rowcount
    forgotten = uow.session.execute(  # type: ignore[attr-defined]
        delete(dedupe).where(dedupe.c.processed_at < now - timedelta(days=settings.dedupe_retention_days))
    ).rowcount
    return finished, forgotten


def _prune_now(settings: Settings) -> None:
    from shared import retention

    with UnitOfWork(settings) as uow:
        finished, forgotten = prune(uow, utcnow(), settings)
        kept_for = retention.prune(uow, utcnow(), settings)
        uow.commit()
    if finished or forgotten:
        log.info("pruned %d finished outbox rows and %d de-duplication records", finished, forgotten)
    if kept_for.idempotency_records or kept_for.deliveries:
        log.info(
            "pruned %d idempotency records and %d finished channel deliveries",
            kept_for.idempotency_records,
            kept_for.deliveries,
        )


def run_relay(publisher: Publisher, stop: threading.Event, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    log.info("relay started")
    next_prune = 0.0
    while not stop.is_set():
        try:
            published = relay_once(publisher, settings)
            if time.monotonic() >= next_prune:
                _prune_now(settings)
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        except Exception:
            log.exception("relay pass failed; retrying")
            published = 0
        beat("relay")
        if published < settings.relay_batch:
            stop.wait(settings.relay_interval)
    log.info("relay stopped")
