"""Plain helpers for the reminder tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from shared.db.tables import OutboxMessage, Reminder
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, SOURCE_PATHWAY, Event, to_envelope
from shared.settings import Settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def assessed_envelope(
    patient_id: str,
    seq: int,
    deadlines: list[dict[str, Any]],
    *,
    org: str = "org-a",
    event_id: str | None = None,
) -> dict[str, Any]:
    data = {"patient_id": patient_id, "org": org, "assessment_seq": seq, "deadlines": deadlines}
    event = Event(PATHWAY_ASSESSED, SOURCE_PATHWAY, patient_id, data)
    if event_id is not None:
        event = Event(PATHWAY_ASSESSED, SOURCE_PATHWAY, patient_id, data, id=event_id)
    return to_envelope(event)


def deadline(kind: str, due_at: datetime, status: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "due_at": due_at.isoformat().replace("+00:00", "Z"),
        "status": status,
        "text": f"{kind} text",
        "citation": "G3",
        "fact_ids": ["fact-1"],
        **extra,
    }


def reminders_of(settings: Settings, patient_id: str) -> list[Reminder]:
    with UnitOfWork(settings, read_only=True) as uow:
        statement = select(Reminder).where(Reminder.patient_id == patient_id).order_by(Reminder.due_at, Reminder.kind)
        reminders = list(uow.session.execute(statement).scalars())
        uow.session.expunge_all()  # keep the loaded values after the unit of work rolls back
        return reminders


def outbox_count(settings: Settings, event_type: str) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        return uow.session.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.event_type == event_type)
        ).scalar_one()
