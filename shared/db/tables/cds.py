"""CDS Hooks: the registered CDS clients (EHRs) whose JWTs are accepted, the JWT ids already used (replay
protection, kept until the token expires) and the feedback EHRs send about the cards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from shared.db.tables.base import new_id, utc_field


class CdsClient(SQLModel, table=True):
    """A CDS client of one organisation: its JWT issuer and keys (a JWKS URL, or the JWKS inline)."""

    __tablename__ = "cds_client"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100, index=True)
    issuer: str = Field(max_length=500, unique=True)
    jwks_url: str | None = Field(default=None, max_length=1000)
    jwks: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    # The FHIR server base URLs this client's calls may name as `fhirServer` (SSRF allow-list; none: no fetch).
    fhir_servers: list[str] | None = Field(default=None, sa_type=JSON, nullable=True)
    created_at: datetime = utc_field()


class CdsJwtUse(SQLModel, table=True):
    """A client JWT's `jti`, per issuer, recorded on first use; a second use is a replay (refused)."""

    __tablename__ = "cds_jwt_use"
    issuer: str = Field(primary_key=True, max_length=500)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = utc_field(index=True)


class CdsFeedback(SQLModel, table=True):
    """One feedback item: a card accepted or overridden (with the coded reason), as the EHR reported it."""

    __tablename__ = "cds_feedback"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100, index=True)
    service_id: str = Field(max_length=60)
    card_uuid: str = Field(max_length=64, index=True)
    outcome: str = Field(max_length=20)  # accepted | overridden
    override_system: str | None = Field(default=None, max_length=300)
    override_code: str | None = Field(default=None, max_length=100)
    user_comment: str | None = Field(default=None, max_length=1000)
    accepted_suggestions: list[str] | None = Field(default=None, sa_type=JSON, nullable=True)
    outcome_at: datetime = utc_field()
    received_at: datetime = utc_field()
    actor: str = Field(max_length=120)
    # What carepath did about it: "reminder_snoozed", "reminder_dismissed", "reminder_unchanged", or NULL.
    action: str | None = Field(default=None, max_length=40)
    reminder_id: str | None = Field(default=None, max_length=36)
