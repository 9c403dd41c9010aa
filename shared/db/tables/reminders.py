"""Reminders (one per patient, kind, due_at) and their transition history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db.tables.base import json_field, new_id, utc_field

ACTIVE_STATUSES = ("scheduled", "due", "acknowledged", "snoozed")
TERMINAL_STATUSES = ("completed", "dismissed", "cancelled")
STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES
# Who closed a terminal reminder: the pathway (may reopen it) or a coordinator (never overridden).
CLOSED_BY_PATHWAY = "pathway"
CLOSED_BY_USER = "user"
# Why a reminder exists: a deadline of the pathway as it evaluated the patient's facts (the usual case), or a
# deadline that a change of rule set created (or reopened) for facts that were already known.
ORIGIN_PATHWAY = "pathway"
ORIGIN_RULE_CHANGE = "rule_change"
ORIGINS = (ORIGIN_PATHWAY, ORIGIN_RULE_CHANGE)


class Reminder(SQLModel, table=True):
    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "due_at", name="uq_reminder_patient_kind_due"),
        # The scheduler's sweep: the next instant something must happen to a reminder.
        Index("ix_reminder_next_action", "next_action_at"),
        Index("ix_reminder_org_assigned", "org", "assigned_to"),
        # Covering (migration 0014): the worklist's count, sort and kinds, the API's list by due time, and the
        # overview's reminders per kind and overdue-review list read only index entries — at 1,000,000
        # reminders the worklist's statements took 138 ms reading rows from the table, 20 ms from this.
        Index(
            "ix_reminder_org_status_due_cover",
            "org",
            "status",
            "due_at",
            "kind",
            "origin",
            "created_at",
            "escalated_at",
            "patient_id",
            "id",
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100)
    patient_id: str = Field(foreign_key="patient.id", max_length=36, index=True)
    kind: str = Field(max_length=60)
    due_at: datetime = utc_field()
    status: str = Field(max_length=20)
    text: str = Field(max_length=500)
    citation: str = Field(max_length=200)
    # The citation codes resolved to their sources, [{code, title, url}], when the pathway sent them.
    sources: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON, nullable=True)
    fact_ids: list[str] = json_field(default_factory=list)
    origin: str = Field(default=ORIGIN_PATHWAY, max_length=20, sa_column_kwargs={"server_default": ORIGIN_PATHWAY})
    origin_rule_set_version: str | None = Field(default=None, max_length=40)  # set when origin is rule_change
    # scheduled: due_at; snoozed: until; due/acknowledged: escalation time; else NULL.
    next_action_at: datetime | None = utc_field(nullable=True)
    delivered_at: datetime | None = utc_field(nullable=True)
    snoozed_until: datetime | None = utc_field(nullable=True)
    escalated_at: datetime | None = utc_field(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=80)
    claim_expires_at: datetime | None = utc_field(nullable=True)
    dismiss_reason: str | None = Field(default=None, max_length=60)
    dismiss_comment: str | None = Field(default=None, max_length=1000)
    closed_by: str | None = Field(default=None, max_length=20)
    # The coordinator who owns it: their token subject (an id, never a name); None while nobody does.
    assigned_to: str | None = Field(default=None, max_length=200)
    assigned_at: datetime | None = utc_field(nullable=True)
    # W3C traceparent of the consumer span that created it: its delivery continues that trace (no PHI).
    traceparent: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    version: int = 1


class ReminderTransition(SQLModel, table=True):
    """Who moved a reminder from one status to another, when and why."""

    __tablename__ = "reminder_transition"

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: str = Field(foreign_key="reminder.id", max_length=36, index=True)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    actor: str = Field(max_length=120)  # "pathway", "scheduler", or "user:<sub>"
    reason: str | None = Field(default=None, max_length=60)
    comment: str | None = Field(default=None, max_length=1000)
    at: datetime = utc_field()
    details: dict[str, Any] = json_field()


class ReminderReconcileState(SQLModel, table=True):
    """Per-patient watermark: the newest assessment seq reconciled. Older (stale) events are ignored;
    the row is also the lock that serialises concurrent reconciliations of one patient."""

    __tablename__ = "reminder_reconcile_state"

    patient_id: str = Field(primary_key=True, max_length=36)
    org: str = Field(max_length=100)
    assessment_seq: int
    reconciled_at: datetime = utc_field()
    # The stage the reconciled assessment named (the worklist's stage filter); None before the first one.
    stage: str | None = Field(default=None, max_length=40)


class WorklistMember(SQLModel, table=True):
    """A coordinator (or ops) subject who has signed in to an organisation's worklist: whom a reminder can
    be assigned to. Ids only (the token subject), never a name."""

    __tablename__ = "worklist_member"

    org: str = Field(primary_key=True, max_length=100)
    subject: str = Field(primary_key=True, max_length=200)
    role: str = Field(max_length=20)
    first_seen_at: datetime = utc_field()
    last_seen_at: datetime = utc_field()
