"""The worklist's read model: the organisation's open reminders, overdue first, then urgency, then due time.

The order is a pure function of (reminder, now) so it is easy to state and test; the page shows at most
MAX_ROWS rows (a coordinator narrows with the filters beyond that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from services.notifications import transitions as t
from shared.clock import as_utc
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork

WORKLIST_STATUSES = (t.DUE, t.ACKNOWLEDGED, t.SNOOZED)
# Lower is more urgent; kinds not listed share the default rank.
URGENCY = {"urgent_surgical_referral": 0}
DEFAULT_URGENCY = 1
MAX_ROWS = 500
KIND_LABELS = {
    "urgent_surgical_referral": "Urgent surgical referral",
    "initial_evaluation_overdue": "Initial evaluation overdue",
    "opioid_monitoring_plan": "Opioid monitoring plan",
    "opioid_review_4w": "4-week opioid review",
    "opioid_review_dose_change": "Opioid review after a dose change",
    "opioid_review_periodic": "Periodic opioid review",
    "pdmp_review": "PDMP review",
    "urine_drug_test": "Urine drug test",
    "pt_start_check": "Physical therapy start check",
    "pt_follow_up": "Physical therapy follow-up",
    "first_line_review": "First-line treatment review",
    "procedure_follow_up": "Procedure follow-up",
}


@dataclass(frozen=True)
class Row:
    id: str
    patient_label: str
    kind: str
    kind_label: str
    status: str
    due_at: datetime
    overdue: bool
    urgent: bool
    text: str
    citation: str
    snoozed_until: datetime | None
    escalated: bool
    actions: tuple[str, ...]


def order_key(due_at: datetime, kind: str, now: datetime) -> tuple[int, int, datetime]:
    """Overdue before not yet overdue, then by urgency, then earliest due first."""
    due = as_utc(due_at)
    return (0 if due < now else 1, URGENCY.get(kind, DEFAULT_URGENCY), due)


def kind_label(kind: str) -> str:
    if kind in KIND_LABELS:
        return KIND_LABELS[kind]
    label = kind.replace("_", " ")
    return label[:1].upper() + label[1:]


def allowed_actions(status: str) -> tuple[str, ...]:
    return tuple(action for action in t.USER_ACTIONS if t.target_status(action, status) is not None)


def rows(
    uow: UnitOfWork, org: str, now: datetime, *, kind: str | None = None, statuses: Sequence[str] = WORKLIST_STATUSES
) -> list[Row]:
    statement = (
        select(Reminder, col(Patient.external_id))
        .join(Patient, col(Patient.id) == col(Reminder.patient_id))
        .where(col(Reminder.org) == org, col(Reminder.status).in_(list(statuses)))
        .order_by(col(Reminder.due_at))
        .limit(MAX_ROWS)
    )
    if kind:
        statement = statement.where(col(Reminder.kind) == kind)
    found = [_row(reminder, external_id, now) for reminder, external_id in uow.session.execute(statement).all()]
    return sorted(found, key=lambda row: order_key(row.due_at, row.kind, now))


def _row(reminder: Reminder, external_id: str, now: datetime) -> Row:
    due = as_utc(reminder.due_at)
    return Row(
        id=reminder.id,
        patient_label=external_id,
        kind=reminder.kind,
        kind_label=kind_label(reminder.kind),
        status=reminder.status,
        due_at=due,
        overdue=due < now,
        urgent=URGENCY.get(reminder.kind, DEFAULT_URGENCY) == 0,
        text=reminder.text,
        citation=reminder.citation,
        snoozed_until=as_utc(reminder.snoozed_until) if reminder.snoozed_until else None,
        escalated=reminder.escalated_at is not None,
        actions=allowed_actions(reminder.status),
    )


def kinds(uow: UnitOfWork, org: str) -> list[str]:
    """The kinds the organisation has open reminders of (for the filter)."""
    statement = (
        select(col(Reminder.kind))
        .where(col(Reminder.org) == org, col(Reminder.status).in_(list(WORKLIST_STATUSES)))
        .distinct()
    )
    return sorted(uow.session.execute(statement).scalars())
