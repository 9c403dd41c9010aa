"""Patients, their updates (facts), assessments, idempotency, outbox and consumer de-duplication."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Index, UniqueConstraint, event, text, update
from sqlalchemy import false as sql_false
from sqlmodel import Field, SQLModel

from shared.db.tables.base import json_field, new_id, utc_field


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("org", "external_id", name="uq_patient_org_external_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100, index=True)
    external_id: str = Field(max_length=200)
    created_at: datetime = utc_field()
    # When the engine said the result changes with no new fact; the scheduler re-evaluates then.
    next_evaluation_at: datetime | None = utc_field(nullable=True, index=True)


class PatientUpdate(SQLModel, table=True):
    """One clinical fact as posted. Never changed after insert."""

    __tablename__ = "patient_update"
    __table_args__ = (Index("ix_patient_update_patient_occurred", "patient_id", "occurred_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    patient_id: str = Field(foreign_key="patient.id", max_length=36)
    org: str = Field(max_length=100)
    type: str = Field(max_length=40)
    occurred_at: datetime = utc_field()
    # The offset the client wrote, kept so the fact can be shown as entered (computation is in UTC).
    occurred_at_text: str = Field(max_length=64)
    data: dict[str, Any] = json_field()
    received_at: datetime = utc_field()


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    org: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=16)  # in_flight | done
    status_code: int | None = None
    response: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = utc_field()


PENDING_PATHWAY_UPDATE = "consumer = 'pathway' AND event_type = 'carepath.patient.updated' AND done_at IS NULL"


class OutboxMessage(SQLModel, table=True):
    """One event for one consumer. Finished (done_at) only when that consumer recorded it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("event_id", "consumer", name="uq_outbox_message_event_consumer"),
        Index("ix_outbox_message_pending", "done_at", "available_at"),
        # The pathway worker's coalescing: a patient's other pending events (services/pathway/coalescing.py).
        Index("ix_outbox_message_consumer_subject", "consumer", "subject", "done_at"),
        # The relay's deferral of a patient's later update events (shared/messaging/relay.py _covered_later):
        # small (unfinished pathway update rows only), index-only, and keeps the claim below PostgreSQL's JIT cost.
        Index(
            "ix_outbox_message_pending_pathway_update",
            "subject",
            "id",
            postgresql_where=text(PENDING_PATHWAY_UPDATE),
            sqlite_where=text(PENDING_PATHWAY_UPDATE),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=80)
    consumer: str = Field(max_length=40)
    subject: str | None = Field(default=None, max_length=64)  # the event's subject (a patient id), or none
    envelope: dict[str, Any] = json_field()
    created_at: datetime = utc_field()
    available_at: datetime = utc_field()
    attempts: int = 0
    published_at: datetime | None = utc_field(nullable=True)
    done_at: datetime | None = utc_field(nullable=True)


class ProcessedEvent(SQLModel, table=True):
    """A consumer handles each (source, id) once."""

    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True, max_length=40)
    source: str = Field(primary_key=True, max_length=120)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = utc_field()


class Assessment(SQLModel, table=True):
    """One stored evaluation of a patient; the history is these rows by seq."""

    __tablename__ = "assessment"
    __table_args__ = (
        UniqueConstraint("patient_id", "seq", name="uq_assessment_patient_seq"),
        # The population overview: each patient's newest assessment in one organisation.
        Index("ix_assessment_org_patient_seq", "org", "patient_id", "seq"),
        # Covering: the overview's per-stage counts and care gaps read only this index (migration 0014).
        Index(
            "ix_assessment_org_current_summary", "org", "is_current", "stage", "current_mme", "patient_id", "flag_codes"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patient.id", max_length=36, index=True)
    org: str = Field(max_length=100)
    seq: int
    stage: str = Field(max_length=40)
    rule_set_version: str = Field(max_length=40)
    profile: str = Field(max_length=40)
    params_digest: str = Field(max_length=64)
    updates_evaluated: int
    evaluated_at: datetime = utc_field()
    body: dict[str, Any] = json_field()
    changes: dict[str, Any] = json_field()
    trigger: str = Field(max_length=40)  # update | scheduled | reevaluation
    # Read copies of the body for SQL aggregation (the population overview), filled from `body` on insert:
    # the flag codes as " code code " (space-delimited, padded: match with LIKE '% code %'), the current MME.
    flag_codes: str = Field(default="", sa_column_kwargs={"server_default": ""})
    current_mme: float | None = Field(default=None, nullable=True)
    # True on the patient's newest row only: set on insert, cleared on the older rows in the same flush.
    is_current: bool = Field(default=True, sa_column_kwargs={"server_default": sql_false()})


def summary_columns(body: dict[str, Any]) -> tuple[str, float | None]:
    """(flag_codes, current_mme) of an assessment body, as the overview reads them."""
    codes = sorted({str(flag["code"]) for flag in body.get("flags", []) if isinstance(flag, dict) and "code" in flag})
    mme = body.get("current_mme")
    return (f" {' '.join(codes)} " if codes else ""), (float(mme) if isinstance(mme, int | float) else None)


@event.listens_for(Assessment, "before_insert")
def _fill_summary(_mapper: Any, connection: Connection, target: Assessment) -> None:
    target.flag_codes, target.current_mme = summary_columns(target.body)
    target.is_current = True
    table = Assessment.__table__  # type: ignore[attr-defined]
    connection.execute(
        update(table)
        .where(table.c.patient_id == target.patient_id, table.c.seq < target.seq, table.c.is_current.is_(True))
        .values(is_current=False)
    )


class OrgConfig(SQLModel, table=True):
    """Per-organisation pathway policy: profile and parameter overrides."""

    __tablename__ = "org_config"

    org: str = Field(primary_key=True, max_length=100)
    profile: str = Field(default="asra-2020", max_length=40)
    overrides: dict[str, Any] = json_field()
    updated_at: datetime = utc_field()
    # The IANA zone the organisation works in (pages, emails, the calendar feed, business days); None: UTC.
    timezone: str | None = Field(default=None, max_length=64)
