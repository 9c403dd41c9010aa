"""The worklist's read model: the organisation's open reminders, overdue first, then urgency, then due time.

The order is a pure function of (reminder, now) so it is easy to state and test; the page shows at most
MAX_ROWS rows (a coordinator narrows with the filters beyond that).

A reminder created by a change of rule set ("new under rule set 2026.2") whose due time under the new rules
had already passed is not shown as overdue: the team could not have acted on it before it existed. It is
placed as due at its creation, shows the rule's own due time beside it, and turns overdue (escalated) only
if nobody acts within the usual window counted from its creation (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from services.notifications import transitions as t
from shared.clock import as_utc
from shared.db.tables import Patient, Reminder
from shared.db.tables.reminders import ORIGIN_RULE_CHANGE
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
    sources: tuple[Source, ...] = ()
    rule_change: str | None = None  # "2026.2": created by the change to that rule set
    shown_due_at: datetime | None = None  # when it reached the worklist, for a rule change's past deadline
    patient_id: str = ""  # for the audit trail (never shown: the page shows the MRN label)


@dataclass(frozen=True)
class Source:
    code: str
    title: str
    url: str | None


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
    return sorted(found, key=lambda row: order_key(row.shown_due_at or row.due_at, row.kind, now))


def rule_set_label(version: str | None) -> str:
    """ "lbp-postlam-2026.2" -> "2026.2" (what coordinators call it)."""
    return (version or "").rsplit("-", 1)[-1] or "new rules"


def effective_due(reminder: Reminder) -> datetime:
    """When the team could first act on it: its due time, or its creation for a deadline that a rule change
    created already past."""
    due = as_utc(reminder.due_at)
    if reminder.origin == ORIGIN_RULE_CHANGE:
        return max(due, as_utc(reminder.created_at))
    return due


def sources(raw: list[dict[str, Any]] | None) -> tuple[Source, ...]:
    """The stored sources, safely: only http(s) links are linked."""
    found = []
    for item in raw or []:
        url = item.get("url")
        link = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
        found.append(Source(str(item.get("code", "")), str(item.get("title") or item.get("code", "")), link))
    return tuple(found)


def _row(reminder: Reminder, external_id: str, now: datetime) -> Row:
    due = as_utc(reminder.due_at)
    shown = effective_due(reminder)
    rule_change = rule_set_label(reminder.origin_rule_set_version) if reminder.origin == ORIGIN_RULE_CHANGE else None
    return Row(
        id=reminder.id,
        patient_id=reminder.patient_id,
        patient_label=external_id,
        kind=reminder.kind,
        kind_label=kind_label(reminder.kind),
        status=reminder.status,
        due_at=due,
        overdue=(due < now) if rule_change is None else (reminder.escalated_at is not None),
        urgent=URGENCY.get(reminder.kind, DEFAULT_URGENCY) == 0,
        text=reminder.text,
        citation=reminder.citation,
        snoozed_until=as_utc(reminder.snoozed_until) if reminder.snoozed_until else None,
        escalated=reminder.escalated_at is not None,
        actions=allowed_actions(reminder.status),
        sources=sources(reminder.sources),
        rule_change=rule_change,
        shown_due_at=shown if shown != due else None,
    )


def kinds(uow: UnitOfWork, org: str) -> list[str]:
    """The kinds the organisation has open reminders of (for the filter)."""
    statement = (
        select(col(Reminder.kind))
        .where(col(Reminder.org) == org, col(Reminder.status).in_(list(WORKLIST_STATUSES)))
        .distinct()
    )
    return sorted(uow.session.execute(statement).scalars())


def row_of(reminder: Reminder, external_id: str, now: datetime) -> Row:
    """One reminder as the worklist shows it (the patient page lists the patient's reminders the same way)."""
    return _row(reminder, external_id, now)
