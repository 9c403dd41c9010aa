"""The worklist's read model: the organisation's open reminders, overdue first, then urgency, then due time.

The order is a pure function of (reminder, now) so it is easy to state and test, computed in SQL so that
pages (PAGE_SIZE rows, with the total count) and the CSV export of a view share it. Filters (kind, status,
stage, overdue, assignee, patient) are `Filters`, kept in the query string.

A reminder created by a change of rule set ("new under rule set 2026.2") whose due time under the new rules
had already passed is not shown as overdue: the team could not have acted on it before it existed. It is
placed as due at its creation, shows the rule's own due time beside it, and turns overdue (escalated) only
if nobody acts within the usual window counted from its creation (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import col

from services.notifications import transitions as t
from shared.clock import as_utc
from shared.db.tables import Patient, Reminder, ReminderReconcileState
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
    assigned_to: str | None = None  # the owner's subject id
    stage: str | None = None  # the patient's stage at the last reconciled assessment


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


@dataclass(frozen=True)
class Filters:
    """What the worklist shows; every field is a query-string parameter, so a view is a link."""

    kind: str | None = None
    status: str | None = None
    stage: str | None = None
    overdue: bool = False
    assignee: str | None = None  # ME, UNASSIGNED or a coordinator's subject id
    patient: str | None = None  # a patient id (the MRN search resolves to it: no MRN in any URL)
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The non-empty parameters of this view (with `changes`), for links and redirects."""
        values = {**self.__dict__, **changes}
        found = {key: str(value) for key, value in values.items() if value not in (None, "", False)}
        if values.get("overdue"):
            found["overdue"] = "1"
        if found.get("page") == "1":
            del found["page"]
        return found

    @property
    def active(self) -> bool:
        return any(value not in (None, "", False) for key, value in self.__dict__.items() if key != "page")


ME, UNASSIGNED = "me", "unassigned"
PAGE_SIZE = 50
MAX_EXPORT_ROWS = 20_000  # a whole organisation's open reminders; the page says when an export was cut


def _effective_due() -> Any:
    due, created = col(Reminder.due_at), col(Reminder.created_at)
    return case((and_(col(Reminder.origin) == ORIGIN_RULE_CHANGE, created > due), created), else_=due)


def _overdue(now: datetime) -> Any:
    """SQL form of Row.overdue: past its due time; a rule change's reminder only once it escalated."""
    return or_(
        and_(col(Reminder.origin) != ORIGIN_RULE_CHANGE, col(Reminder.due_at) < now),
        and_(col(Reminder.origin) == ORIGIN_RULE_CHANGE, col(Reminder.escalated_at).is_not(None)),
    )


def _where(org: str, filters: Filters, now: datetime, subject: str | None) -> list[Any]:
    statuses = [filters.status] if filters.status else list(WORKLIST_STATUSES)
    conditions: list[Any] = [col(Reminder.org) == org, col(Reminder.status).in_(statuses)]
    if filters.kind:
        conditions.append(col(Reminder.kind) == filters.kind)
    if filters.stage:
        conditions.append(col(ReminderReconcileState.stage) == filters.stage)
    if filters.overdue:
        conditions.append(_overdue(now))
    if filters.patient:
        conditions.append(col(Reminder.patient_id) == filters.patient)
    if filters.assignee == UNASSIGNED:
        conditions.append(col(Reminder.assigned_to).is_(None))
    elif filters.assignee:
        conditions.append(col(Reminder.assigned_to) == (subject if filters.assignee == ME else filters.assignee))
    return conditions


def _joined(statement: Any) -> Any:
    return statement.join(Patient, col(Patient.id) == col(Reminder.patient_id)).outerjoin(
        ReminderReconcileState, col(ReminderReconcileState.patient_id) == col(Reminder.patient_id)
    )


def _staged(statement: Any, filters: Filters) -> Any:
    """The stage table joined only when the stage filter needs it (the page's sort and count stay on the
    reminder table's org/status index)."""
    if not filters.stage:
        return statement
    return statement.join(ReminderReconcileState, col(ReminderReconcileState.patient_id) == col(Reminder.patient_id))


def count(uow: UnitOfWork, org: str, now: datetime, filters: Filters, subject: str | None = None) -> int:
    statement = _staged(select(func.count()).select_from(Reminder), filters).where(*_where(org, filters, now, subject))
    return int(uow.session.execute(statement).scalar_one())


def rows(
    uow: UnitOfWork,
    org: str,
    now: datetime,
    filters: Filters | None = None,
    *,
    subject: str | None = None,
    limit: int | None = MAX_ROWS,
    offset: int = 0,
) -> list[Row]:
    """The view's reminders in worklist order (overdue first, then urgency, then due time), in SQL so that
    pages and the CSV export see one order."""
    filters = filters or Filters()
    effective = _effective_due()
    urgency = case((col(Reminder.kind).in_([k for k, v in URGENCY.items() if v == 0]), 0), else_=DEFAULT_URGENCY)
    # Sort the narrow keys first, then load the page's rows (sorting whole rows with their JSON is slow).
    ordered = (
        _staged(select(col(Reminder.id)), filters)
        .where(*_where(org, filters, now, subject))
        .order_by(case((effective < now, 0), else_=1), urgency, effective, col(Reminder.id))
        .offset(offset)
    )
    if limit is not None:
        ordered = ordered.limit(limit)
    ids = list(uow.session.execute(ordered).scalars())
    if not ids:
        return []
    position = {rid: index for index, rid in enumerate(ids)}
    found: list[Row] = []
    for chunk in (ids[start : start + 500] for start in range(0, len(ids), 500)):
        statement = _joined(select(Reminder, col(Patient.external_id), col(ReminderReconcileState.stage))).where(
            col(Reminder.id).in_(chunk)
        )
        found += [_row(reminder, mrn, now, stage) for reminder, mrn, stage in uow.session.execute(statement)]
    return sorted(found, key=lambda row: position[row.id])


def find_by_mrn(uow: UnitOfWork, org: str, mrn: str) -> str | None:
    """The id of the organisation's patient with exactly this MRN (external id), or None."""
    statement = select(col(Patient.id)).where(col(Patient.org) == org, col(Patient.external_id) == mrn)
    found: str | None = uow.session.execute(statement).scalar_one_or_none()
    return found


def mrn_of(uow: UnitOfWork, org: str, patient_id: str) -> str | None:
    statement = select(col(Patient.external_id)).where(col(Patient.org) == org, col(Patient.id) == patient_id)
    found: str | None = uow.session.execute(statement).scalar_one_or_none()
    return found


# The citation codes -> sources resolver of the pathway's catalogue, for reminders stored without their
# sources (created before the pathway sent them). The composition root plugs it in (carepath/apps.py): the
# notifications service may not import the pathway's.
_catalogue: Callable[[str], list[dict[str, Any]]] | None = None


def use_source_catalogue(resolve: Callable[[str], list[dict[str, Any]]] | None) -> None:
    global _catalogue
    _catalogue = resolve


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


def _row(reminder: Reminder, external_id: str, now: datetime, stage: str | None = None) -> Row:
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
        sources=sources(reminder.sources if reminder.sources is not None else _catalogued(reminder.citation)),
        rule_change=rule_change,
        shown_due_at=shown if shown != due else None,
        assigned_to=reminder.assigned_to,
        stage=stage,
    )


def _catalogued(citation: str) -> list[dict[str, Any]] | None:
    if _catalogue is None or not citation.strip():
        return None
    return _catalogue(citation)


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
