"""Reconcile reminders with the pathway's desired deadline set (pathway-spec.md §3).

`carepath.pathway.assessed` carries the COMPLETE deadline set of one patient. Per (kind, due_at):
pending without a reminder -> a new `scheduled` reminder; satisfied -> the active reminder is `completed`;
cancelled or absent -> the active reminder is `cancelled`; pending again after the pathway itself closed
the reminder -> reopened. A coordinator's decision (dismissed, completed by hand) is never overridden.
Stale events (an assessment_seq below the patient's watermark) change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from services.notifications import transitions as t
from services.notifications.escalation import escalation_at
from services.notifications.wakeup import wake_after_commit
from shared import orgtime
from shared.clock import as_utc, utcnow
from shared.db.tables import Reminder, ReminderReconcileState
from shared.db.tables.base import new_id
from shared.db.tables.reminders import ACTIVE_STATUSES, CLOSED_BY_PATHWAY, ORIGIN_PATHWAY, ORIGIN_RULE_CHANGE
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, TRIGGER_RULE_SET_CHANGED, Event
from shared.observability.tracing import current_traceparent

Key = tuple[str, datetime]  # (kind, due_at) within one patient
_PRECEDENCE = {"pending": 2, "satisfied": 1, "cancelled": 0}


class SourceIn(BaseModel):
    """One citation code resolved by the pathway (e.g. G3 -> the guideline article, with its link)."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(min_length=1, max_length=40)
    title: str = Field(default="", max_length=500)
    url: str | None = Field(default=None, max_length=1000)


class DeadlineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str = Field(min_length=1, max_length=60)
    due_at: AwareDatetime
    status: Literal["pending", "satisfied", "cancelled"]
    text: str = ""
    citation: str = ""
    sources: list[SourceIn] | None = Field(default=None, max_length=20)  # absent: the pathway sent none
    fact_ids: list[str] = Field(default_factory=list)

    def sources_json(self) -> list[dict[str, Any]] | None:
        return None if self.sources is None else [source.model_dump() for source in self.sources]

    @property
    def key(self) -> Key:
        return (self.kind, as_utc(self.due_at))


class AssessedIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    patient_id: str = Field(min_length=1, max_length=36)
    org: str = Field(min_length=1, max_length=100)
    assessment_seq: int
    deadlines: list[DeadlineIn]
    trigger: str | None = Field(default=None, max_length=40)
    rule_set_version: str | None = Field(default=None, max_length=40)
    stage: str | None = Field(default=None, max_length=40)

    @property
    def rule_change(self) -> bool:
        """This assessment moved the patient to another rule set: what it creates, the rule change created."""
        return self.trigger == TRIGGER_RULE_SET_CHANGED

    def origin(self) -> dict[str, Any]:
        if self.rule_change:
            return {"origin": ORIGIN_RULE_CHANGE, "origin_rule_set_version": self.rule_set_version}
        return {"origin": ORIGIN_PATHWAY, "origin_rule_set_version": None}


@dataclass(frozen=True)
class Action:
    """What reconciliation decided for one key: create | complete | cancel | reopen | refresh."""

    verb: str
    key: Key
    deadline: DeadlineIn | None
    reminder: Reminder | None


def merge(deadlines: list[DeadlineIn]) -> dict[Key, DeadlineIn]:
    """One deadline per key: pending over satisfied over cancelled (spec §3)."""
    merged: dict[Key, DeadlineIn] = {}
    for deadline in deadlines:
        current = merged.get(deadline.key)
        if current is None or _PRECEDENCE[deadline.status] > _PRECEDENCE[current.status]:
            merged[deadline.key] = deadline
    return merged


def _decide(reminder: Reminder | None, deadline: DeadlineIn | None) -> str | None:
    desired = deadline.status if deadline else "absent"
    if reminder is None:
        return "create" if desired == "pending" else None
    if reminder.status in ACTIVE_STATUSES:
        if desired == "pending":
            return "refresh"
        return "complete" if desired == "satisfied" else "cancel"
    if desired == "pending" and reminder.closed_by == CLOSED_BY_PATHWAY:
        return "reopen"  # the pathway closed it and now wants it again: clinically safer to reopen
    return None  # coordinator decisions stand; closed reminders stay closed


def plan(existing: dict[Key, Reminder], desired: dict[Key, DeadlineIn]) -> list[Action]:
    """Decisions as values: what to do for every key either side knows."""
    actions = []
    for key in sorted(set(existing) | set(desired), key=lambda k: (k[1], k[0])):
        verb = _decide(existing.get(key), desired.get(key))
        if verb is not None:
            actions.append(Action(verb, key, desired.get(key), existing.get(key)))
    return actions


def _insert_for(uow: UnitOfWork):  # type: ignore[no-untyped-def]
    return sqlite.insert if uow.is_sqlite else postgresql.insert


def _advance_watermark(uow: UnitOfWork, payload: AssessedIn, now: datetime) -> bool:
    """Lock the patient's watermark row (serialising reconciliations of one patient) and move it to this
    seq; False when the event is older than what was already reconciled."""
    table = ReminderReconcileState.__table__  # type: ignore[attr-defined]
    uow.session.execute(
        _insert_for(uow)(table)
        .values(
            patient_id=payload.patient_id,
            org=payload.org,
            assessment_seq=payload.assessment_seq,
            reconciled_at=now,
            stage=payload.stage,
        )
        .on_conflict_do_nothing(index_elements=["patient_id"])
    )
    current = uow.session.execute(
        select(table.c.assessment_seq).where(table.c.patient_id == payload.patient_id).with_for_update()
    ).scalar_one()
    if current > payload.assessment_seq:
        return False
    uow.session.execute(
        table.update()
        .where(table.c.patient_id == payload.patient_id)
        .values(assessment_seq=payload.assessment_seq, reconciled_at=now, stage=payload.stage)
    )
    return True


def _existing(uow: UnitOfWork, patient_id: str) -> dict[Key, Reminder]:
    statement = (
        select(Reminder).where(col(Reminder.patient_id) == patient_id).order_by(col(Reminder.id)).with_for_update()
    )
    return {(r.kind, as_utc(r.due_at)): r for r in uow.session.execute(statement).scalars()}


def _create(uow: UnitOfWork, payload: AssessedIn, deadline: DeadlineIn, now: datetime) -> str | None:
    """Insert a scheduled reminder unless (patient, kind, due_at) already exists (concurrent reconcile)."""
    table = Reminder.__table__  # type: ignore[attr-defined]
    kind, due_at = deadline.key
    created = uow.session.execute(
        _insert_for(uow)(table)
        .values(
            id=new_id(),
            org=payload.org,
            patient_id=payload.patient_id,
            kind=kind,
            due_at=due_at,
            status=t.SCHEDULED,
            text=deadline.text[:500],
            citation=deadline.citation[:200],
            sources=deadline.sources_json(),
            fact_ids=list(deadline.fact_ids),
            **payload.origin(),
            next_action_at=due_at,
            traceparent=current_traceparent(),  # its delivery, later, continues this trace
            created_at=now,
            updated_at=now,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["patient_id", "kind", "due_at"])
        .returning(table.c.id)
    ).scalar()
    return created


def _close(reminder: Reminder, status: str, now: datetime) -> None:
    reminder.status = status
    reminder.closed_by = CLOSED_BY_PATHWAY
    reminder.next_action_at = None
    reminder.snoozed_until = None
    reminder.claimed_by = None
    reminder.claim_expires_at = None
    reminder.updated_at = now
    reminder.version += 1


def _reopen(uow: UnitOfWork, reminder: Reminder, payload: AssessedIn, now: datetime) -> str:
    """Back to where it would be had it never closed: scheduled if never delivered, else due (no second
    delivery event: one delivery per (patient, kind, due_at)). Reopened by a rule change, it says so."""
    if payload.rule_change:
        reminder.origin = ORIGIN_RULE_CHANGE
        reminder.origin_rule_set_version = payload.rule_set_version
    if reminder.delivered_at is None:
        reminder.status, reminder.next_action_at = t.SCHEDULED, reminder.due_at
    else:
        reminder.status = t.DUE
        zone = orgtime.zone_of(uow, reminder.org)
        reminder.next_action_at = None if reminder.escalated_at else escalation_at(reminder.kind, now, zone)
    reminder.closed_by = None
    reminder.updated_at = now
    reminder.version += 1
    return reminder.status


def _refresh(reminder: Reminder, deadline: DeadlineIn) -> None:
    """The texts, sources and facts of the deadline as the pathway now words them (the origin stays)."""
    text, citation, fact_ids = deadline.text[:500], deadline.citation[:200], list(deadline.fact_ids)
    sources = deadline.sources_json()
    current = (reminder.text, reminder.citation, list(reminder.fact_ids or []), reminder.sources)
    if current != (text, citation, fact_ids, sources):
        reminder.text, reminder.citation, reminder.fact_ids, reminder.sources = text, citation, fact_ids, sources


_REASONS = {
    "complete": "deadline_satisfied",
    "cancel": "deadline_cancelled",
    "reopen": "deadline_pending_again",
}


def _apply_one(uow: UnitOfWork, payload: AssessedIn, action: Action, now: datetime) -> dict[str, Any] | None:
    """Carry out one decision; the history row of the status change it made, if any."""
    details: dict[str, Any] = {"assessment_seq": payload.assessment_seq}
    if payload.rule_change:
        details["rule_set_version"] = payload.rule_set_version
    if action.deadline is not None and action.verb == "create":
        created = _create(uow, payload, action.deadline, now)
        if created is None:  # a concurrent reconciliation created it first
            return None
        return t.history_row(
            created, None, t.SCHEDULED, t.ACTOR_PATHWAY, now, reason="deadline_pending", details=details
        )
    reminder = action.reminder
    if reminder is None:
        return None
    if action.deadline is not None and action.verb == "refresh":
        _refresh(reminder, action.deadline)
        return None
    before = reminder.status
    if action.verb == "reopen":
        after = _reopen(uow, reminder, payload, now)
    else:
        after = t.COMPLETED if action.verb == "complete" else t.CANCELLED
        _close(reminder, after, now)
    reason = _REASONS[action.verb] if action.deadline is not None else "deadline_absent"
    return t.history_row(reminder.id, before, after, t.ACTOR_PATHWAY, now, reason=reason, details=details)


def apply(uow: UnitOfWork, payload: AssessedIn, actions: list[Action], now: datetime) -> bool:
    """Carry out the plan with a history row per status change. True if the scheduler has new work."""
    rows = [_apply_one(uow, payload, action, now) for action in actions]
    t.record(uow, [row for row in rows if row is not None])
    return any(action.verb in ("create", "reopen") for action in actions)


def handle_event(uow: UnitOfWork, event: Event) -> None:
    """Consumer handler (shared.messaging.consumer.consume): reconcile one assessed event. No commit."""
    if event.type != PATHWAY_ASSESSED:
        return
    payload = AssessedIn.model_validate(event.data)
    now = utcnow()
    if not _advance_watermark(uow, payload, now):
        return  # stale: a newer assessment was already reconciled
    actions = plan(_existing(uow, payload.patient_id), merge(payload.deadlines))
    if apply(uow, payload, actions, now):
        wake_after_commit(uow)
