"""Intake use cases. They never commit: the caller's unit of work does, so an update and its outbox
row are stored together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from services.intake.schemas import update_payload
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.tables import Patient, PatientUpdate, table_of
from shared.db.tables.base import new_id
from shared.db.uow import UnitOfWork
from shared.events import PATIENT_UPDATED, SOURCE_INTAKE, Event, to_envelope
from shared.patients import PatientNotFound, existing_patients, find_patient, require_patient

__all__ = [
    "DuplicatePatient",
    "PatientNotFound",
    "PreparedUpdate",
    "create_patient",
    "find_patient",
    "prepare_update",
    "record_single_updates",
    "record_updates",
]


class DuplicatePatient(Exception):
    def __init__(self, existing_id: str) -> None:
        super().__init__("a patient with this external_id exists in this organisation")
        self.existing_id = existing_id


def _patient_by_external_id(uow: UnitOfWork, org: str, external_id: str) -> Patient | None:
    query = select(Patient).where(col(Patient.org) == org, col(Patient.external_id) == external_id)
    return uow.session.execute(query).scalar_one_or_none()


def create_patient(uow: UnitOfWork, principal: Principal, external_id: str) -> Patient:
    existing = _patient_by_external_id(uow, principal.org, external_id)
    if existing is not None:
        raise DuplicatePatient(existing.id)
    patient = Patient(org=principal.org, external_id=external_id, created_at=utcnow())
    uow.session.add(patient)
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent create won the race
        uow.rollback()
        raced = _patient_by_external_id(uow, principal.org, external_id)
        raise DuplicatePatient(raced.id if raced else "") from None
    return patient


def _as_row(patient_id: str, org: str, update: Any, received_at: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "patient_id": patient_id,
        "org": org,
        "type": update.type,
        "occurred_at": update.occurred_at,
        "occurred_at_text": update.occurred_at.isoformat(),
        "data": update_payload(update),
        "received_at": received_at,
    }


def record_updates(
    uow: UnitOfWork, principal: Principal, patient_id: str, updates: Sequence[Any]
) -> tuple[list[str], str]:
    """Store the updates and one `carepath.patient.updated` event (outbox) for them; returns (ids, event id).
    Core inserts: the rows are never read back in this transaction, so the ORM's unit of work (object
    construction, identity map, flush) was pure overhead on the busiest route."""
    require_patient(uow, principal.org, patient_id)
    now = utcnow()
    rows = [_as_row(patient_id, principal.org, update, now) for update in updates]
    uow.session.execute(insert(table_of(PatientUpdate)), rows)
    event = _updated_event(patient_id, principal.org, [row["id"] for row in rows])
    uow.publish(event)
    return event.data["update_ids"], event.id


def _updated_event(patient_id: str, org: str, update_ids: list[str]) -> Event:
    return Event(
        type=PATIENT_UPDATED,
        source=SOURCE_INTAKE,
        subject=patient_id,
        data={"patient_id": patient_id, "org": org, "update_ids": update_ids},
    )


@dataclass(frozen=True)
class PreparedUpdate:
    """One update POST, made ready in the request's thread (its envelope carries the request id and trace)."""

    org: str
    patient_id: str
    row: dict[str, Any]
    event: Event
    envelope: dict[str, Any]


def prepare_update(principal: Principal, patient_id: str, update: Any) -> PreparedUpdate:
    row = _as_row(patient_id, principal.org, update, utcnow())
    event = _updated_event(patient_id, principal.org, [row["id"]])
    return PreparedUpdate(principal.org, patient_id, row, event, to_envelope(event))


def record_single_updates(uow: UnitOfWork, items: Sequence[PreparedUpdate]) -> list[tuple[str, str] | PatientNotFound]:
    """`record_updates` of one update each for many requests at once (group commit): one patient lookup and
    one INSERT per table for all of them. Per item: (update id, event id), or PatientNotFound (nothing of
    that item is stored)."""
    known = existing_patients(uow, {(item.org, item.patient_id) for item in items})
    stored = [item for item in items if (item.org, item.patient_id) in known]
    if stored:
        uow.session.execute(insert(table_of(PatientUpdate)), [item.row for item in stored])
        uow.publish_enveloped((item.event, item.envelope) for item in stored)
    return [
        (item.row["id"], item.event.id) if (item.org, item.patient_id) in known else PatientNotFound(item.patient_id)
        for item in items
    ]
