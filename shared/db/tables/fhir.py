"""FHIR identity: which carepath patient a FHIR Patient is, and which updates a FHIR resource version became.

Both are per organisation: another organisation's identical identifier is another patient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db.tables.base import json_field, new_id, utc_field


class FhirPatientLink(SQLModel, table=True):
    """A FHIR Patient seen by its `identifier` (key "system|value", kind identifier) or its `id` (kind id)."""

    __tablename__ = "fhir_patient_link"
    __table_args__ = (UniqueConstraint("org", "kind", "key", name="uq_fhir_patient_link_org_kind_key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100)
    kind: str = Field(max_length=16)  # identifier | id
    key: str = Field(max_length=500)
    patient_id: str = Field(foreign_key="patient.id", max_length=36, index=True)
    created_at: datetime = utc_field()


class FhirResourceLink(SQLModel, table=True):
    """One version of one FHIR resource as received, and the update ids it was recorded as (maybe none).

    `identity` is "id:<id>" or, for a resource without an id, "identifier:<system|value>"; `version` is
    meta.versionId or "" (no version: the resource is the same whenever it is sent again)."""

    __tablename__ = "fhir_resource_link"
    __table_args__ = (
        UniqueConstraint("org", "resource_type", "identity", "version", name="uq_fhir_resource_link_version"),
        Index("ix_fhir_resource_link_identifier", "org", "resource_type", "identifier"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100)
    patient_id: str = Field(foreign_key="patient.id", max_length=36, index=True)
    resource_type: str = Field(max_length=40)
    identity: str = Field(max_length=600)
    identifier: str | None = Field(default=None, max_length=500)
    version: str = Field(max_length=64)
    status: str | None = Field(default=None, max_length=40)
    # What a later version is compared with (a medication's drug class and MME, say).
    state: dict[str, Any] = json_field()
    update_ids: list[str] = json_field(default_factory=list)
    received_at: datetime = utc_field()
