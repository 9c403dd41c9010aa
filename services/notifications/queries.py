"""Read side of reminders: the filtered, cursor-paged list, one reminder with its history, and the views.

Order is (due_at, id), stable under inserts; the cursor is an opaque token of the last item's key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import col

from services.notifications.lifecycle import ReminderNotFound
from shared.clock import as_utc, isoformat
from shared.db.tables import Reminder, ReminderTransition
from shared.db.tables.reminders import STATUSES
from shared.db.uow import UnitOfWork

MAX_LIMIT = 200
CURSOR_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)  # the instants every route accepts (shared.web)
CURSOR_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class InvalidCursor(ValueError):
    """The cursor was not produced by this service (HTTP 422)."""


def encode_cursor(reminder: Reminder) -> str:
    raw = json.dumps([isoformat(reminder.due_at), reminder.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        due_text, reminder_id = json.loads(raw)
        parsed = datetime.fromisoformat(due_text)
        due_at = as_utc(parsed) if parsed.tzinfo is not None else None
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        raise InvalidCursor("cursor is not valid") from None
    # Only what encode_cursor can produce: an instant of the years reminders use, an id of at most 36.
    if due_at is None or not CURSOR_EARLIEST <= due_at < CURSOR_LATEST:
        raise InvalidCursor("cursor is not valid")
    if not isinstance(reminder_id, str) or not 0 < len(reminder_id) <= 36 or not reminder_id.isascii():
        raise InvalidCursor("cursor is not valid")
    return due_at, reminder_id


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}")
    return wanted


def list_reminders(
    uow: UnitOfWork,
    org: str,
    *,
    patient_id: str | None = None,
    status: str | Sequence[str] | None = None,
    kind: str | None = None,
    due_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    assigned_to: str | None = None,
) -> tuple[list[Reminder], str | None]:
    """One page of the organisation's reminders by (due_at, id), and the cursor of the next page (or None).
    `status` may be one status or several."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1-{MAX_LIMIT}")
    statement = select(Reminder).where(col(Reminder.org) == org)
    if patient_id is not None:
        statement = statement.where(col(Reminder.patient_id) == patient_id)
    statuses = _statuses(status)
    if statuses is not None:
        statement = statement.where(col(Reminder.status).in_(statuses))
    if kind is not None:
        statement = statement.where(col(Reminder.kind) == kind)
    if due_before is not None:
        statement = statement.where(col(Reminder.due_at) < as_utc(due_before))
    if assigned_to is not None:
        statement = statement.where(col(Reminder.assigned_to) == assigned_to)
    if cursor is not None:
        after_due, after_id = decode_cursor(cursor)
        due, rid = col(Reminder.due_at), col(Reminder.id)
        statement = statement.where(or_(due > after_due, and_(due == after_due, rid > after_id)))
    statement = statement.order_by(col(Reminder.due_at), col(Reminder.id)).limit(limit + 1)
    rows = list(uow.session.execute(statement).scalars())
    page, more = rows[:limit], len(rows) > limit
    return page, encode_cursor(page[-1]) if more else None


def get_reminder(uow: UnitOfWork, org: str, reminder_id: str) -> Reminder:
    reminder = uow.session.execute(
        select(Reminder).where(col(Reminder.id) == reminder_id, col(Reminder.org) == org)
    ).scalar_one_or_none()
    if reminder is None:
        raise ReminderNotFound(reminder_id)
    return reminder


def history(uow: UnitOfWork, reminder_id: str) -> list[ReminderTransition]:
    statement = (
        select(ReminderTransition)
        .where(col(ReminderTransition.reminder_id) == reminder_id)
        .order_by(col(ReminderTransition.at), col(ReminderTransition.id))
    )
    return list(uow.session.execute(statement).scalars())


def reminder_view(reminder: Reminder) -> dict[str, Any]:
    return {
        "id": reminder.id,
        "patient_id": reminder.patient_id,
        "kind": reminder.kind,
        "due_at": isoformat(reminder.due_at),
        "status": reminder.status,
        "text": reminder.text,
        "citation": reminder.citation,
        "delivered_at": isoformat(reminder.delivered_at),
        "escalated_at": isoformat(reminder.escalated_at),
        "snoozed_until": isoformat(reminder.snoozed_until),
        "fact_ids": list(reminder.fact_ids or []),
        "sources": reminder.sources,
        "origin": reminder.origin,
        "origin_rule_set_version": reminder.origin_rule_set_version,
        "assigned_to": reminder.assigned_to,
        "assigned_at": isoformat(reminder.assigned_at),
    }


def transition_view(row: ReminderTransition) -> dict[str, Any]:
    return {
        "from_status": row.from_status,
        "to_status": row.to_status,
        "actor": row.actor,
        "at": isoformat(row.at),
        "reason": row.reason,
        "comment": row.comment,
        "details": row.details or {},
    }


def reminder_detail_view(reminder: Reminder, rows: list[ReminderTransition]) -> dict[str, Any]:
    return {
        **reminder_view(reminder),
        "dismiss_reason": reminder.dismiss_reason,
        "dismiss_comment": reminder.dismiss_comment,
        "history": [transition_view(row) for row in rows],
    }
