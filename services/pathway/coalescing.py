"""Coalesced evaluation: several queued update events of one patient need one evaluation.

An update event's evaluation reads all of the patient's stored facts, so it covers every update committed
before it read them. Holding the patient's lock, it first finishes the outbox rows of the patient's other
pending update events (the relay then never publishes those not yet published), then loads the facts: the
rows it finished were committed with their updates before that statement, so the facts include them. An
event whose outbox row such an evaluation finished is recorded as processed like any other (its
processed_event row, in the consumer's transaction) and acknowledged without evaluating again.

Safe under concurrency: every step runs under the patient's row lock (PostgreSQL) or the write lock
(SQLite); a worker that waited for the lock sees the covering evaluation's commit and skips. The newest
assessment therefore always counts every accepted update (tests/faults/invariants.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, update

from services.pathway.handler import Outcome, evaluate_patient, lock_patient
from shared.clock import utcnow
from shared.db.tables import OutboxMessage, ProcessedEvent, table_of
from shared.db.uow import UnitOfWork
from shared.events import PATIENT_UPDATED, Event
from shared.messaging.routing import PATHWAY
from shared.observability.metrics import UPDATES_COALESCED


def _update_count(envelope: Any) -> int:
    ids = envelope.get("data", {}).get("update_ids") if isinstance(envelope, dict) else None
    return len(ids) if isinstance(ids, list) else 1


def _count_after_commit(uow: UnitOfWork, updates: int) -> None:
    if updates:
        sa_event.listen(uow.session, "after_commit", lambda _session: UPDATES_COALESCED.inc(updates), once=True)


def already_covered(uow: UnitOfWork, event: Event) -> bool:
    """This event's pathway outbox row was finished by an evaluation that covered its updates."""
    table = table_of(OutboxMessage)
    query = select(table.c.done_at).where(table.c.event_id == event.id, table.c.consumer == PATHWAY)
    row = uow.session.execute(query).first()
    return row is not None and row.done_at is not None


def cover_pending(uow: UnitOfWork, patient_id: str, event: Event) -> int:
    """Finish the patient's other pending update events for the pathway (this evaluation covers them);
    returns how many updates they carried. On SQLite (transactions serialised by the write lock) they are
    recorded as processed here too, so their deliveries are read-only duplicates; on PostgreSQL a worker
    may hold one's processed_event row uncommitted while it waits for this patient's lock (recording it
    here would deadlock), so there each is recorded by its own delivery."""
    table = table_of(OutboxMessage)
    covered = uow.session.execute(
        update(table)
        .where(
            table.c.consumer == PATHWAY,
            table.c.subject == patient_id,
            table.c.done_at.is_(None),
            table.c.event_type == PATIENT_UPDATED,
            table.c.event_id != event.id,
        )
        .values(done_at=utcnow())
        .returning(table.c.event_id, table.c.envelope)
    ).all()
    if covered and uow.is_sqlite:
        now = utcnow()
        uow.session.execute(
            insert(table_of(ProcessedEvent)).prefix_with("OR IGNORE"),
            [
                {
                    "consumer": PATHWAY,
                    "source": row.envelope.get("source", ""),
                    "event_id": row.event_id,
                    "processed_at": now,
                }
                for row in covered
            ],
        )
    return sum(_update_count(row.envelope) for row in covered)


def evaluate_update(uow: UnitOfWork, event: Event, trigger: str) -> Outcome | None:
    """Evaluate the patient for this update event, covering its other queued update events; None when an
    earlier evaluation already covered this one (nothing evaluated)."""
    patient = lock_patient(uow, event.subject)
    if already_covered(uow, event):
        return None
    # counted once the covering evaluation commits (a rolled-back one covered nothing)
    _count_after_commit(uow, cover_pending(uow, patient.id, event))
    return evaluate_patient(uow, patient.id, trigger, locked=patient)
