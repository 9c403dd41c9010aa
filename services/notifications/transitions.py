"""The reminder state machine (decisions as values) and the history every transition leaves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert

from shared.db.tables import ReminderTransition
from shared.db.uow import UnitOfWork

SCHEDULED, DUE, ACKNOWLEDGED, SNOOZED = "scheduled", "due", "acknowledged", "snoozed"
COMPLETED, DISMISSED, CANCELLED = "completed", "dismissed", "cancelled"

ACTOR_PATHWAY = "pathway"
ACTOR_SCHEDULER_PREFIX = "scheduler"

# Coordinator actions: action -> (statuses it may start from, status it leads to). Anything else is a 409.
USER_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "acknowledge": (frozenset({DUE, SNOOZED}), ACKNOWLEDGED),
    "complete": (frozenset({SCHEDULED, DUE, ACKNOWLEDGED, SNOOZED}), COMPLETED),
    "snooze": (frozenset({DUE, ACKNOWLEDGED, SNOOZED}), SNOOZED),
    "dismiss": (frozenset({SCHEDULED, DUE, ACKNOWLEDGED, SNOOZED}), DISMISSED),
}


def target_status(action: str, current: str) -> str | None:
    """The status `action` leads to from `current`, or None when the transition makes no sense."""
    sources, target = USER_ACTIONS[action]
    return target if current in sources else None


def history_row(
    reminder_id: str,
    from_status: str | None,
    to_status: str,
    actor: str,
    at: datetime,
    *,
    reason: str | None = None,
    comment: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "reminder_id": reminder_id,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "comment": comment,
        "at": at,
        "details": details or {},
    }


def record(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """Insert history rows (one statement; no commit: the unit of work commits)."""
    if rows:
        uow.session.flush()  # pending ORM changes (a new reminder row) first: the history refers to them
        uow.session.execute(insert(ReminderTransition), rows)
