"""The audit trail (HIPAA §164.312(b)): one append-only row per read or change of patient data, per
configuration change, per notification sent and per sign-in or refused authentication.

Rows are never updated or deleted: database triggers (migration 0007) refuse UPDATE and DELETE on both
PostgreSQL and SQLite. A row holds identifiers only (actor, organisation, patient id, resource type and id,
route template): never a request body, a clinical value or an MRN.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from shared.db.tables.base import utc_field

OUTCOMES = ("success", "denied", "not_found", "invalid", "error")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_org_at", "org", "at"),
        Index("ix_audit_event_patient", "org", "patient_id"),
    )

    # BIGINT on PostgreSQL (an identity that outlives years of requests); INTEGER PRIMARY KEY on SQLite.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    at: datetime = utc_field(index=True)
    actor_subject: str = Field(max_length=200)  # the token's subject, "-" when unauthenticated
    actor_role: str = Field(max_length=20)  # client | coordinator | ops | system | anonymous
    org: str | None = Field(default=None, max_length=100)
    action: str = Field(max_length=60)  # e.g. patient.create, pathway.read, auth.refused
    outcome: str = Field(max_length=20)  # one of OUTCOMES
    patient_id: str | None = Field(default=None, max_length=36)
    resource_type: str | None = Field(default=None, max_length=40)
    resource_id: str | None = Field(default=None, max_length=64)
    route: str = Field(max_length=200)  # "GET /v1/patients/{patient_id}/pathway" or "command dispatcher"
    request_id: str | None = Field(default=None, max_length=64)
    status_code: int | None = None
