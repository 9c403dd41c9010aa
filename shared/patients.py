"""Patient lookup scoped to an organisation, and the error every service shares for "no such patient"."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlmodel import col

from shared.db.tables import Patient, table_of
from shared.db.uow import UnitOfWork


class PatientNotFound(LookupError):
    """No such patient in the caller's organisation (another organisation's patient included)."""


def find_patient(uow: UnitOfWork, org: str, patient_id: str, *, lock: bool = False) -> Patient:
    query = select(Patient).where(col(Patient.id) == patient_id, col(Patient.org) == org)
    if lock and not uow.is_sqlite:
        query = query.with_for_update()
    patient: Patient | None = uow.session.execute(query).scalar_one_or_none()
    if patient is None:
        raise PatientNotFound(patient_id)
    return patient


def require_patient(uow: UnitOfWork, org: str, patient_id: str) -> None:
    """PatientNotFound unless the organisation has this patient (a Core query: no ORM object is built)."""
    table = table_of(Patient)
    query = select(table.c.id).where(table.c.id == patient_id, table.c.org == org)
    if uow.session.execute(query).first() is None:
        raise PatientNotFound(patient_id)


def existing_patients(uow: UnitOfWork, wanted: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (org, patient id) pairs name a patient of that organisation: one query for all."""
    pairs = set(wanted)
    if not pairs:
        return set()
    table = table_of(Patient)
    query = select(table.c.org, table.c.id).where(table.c.id.in_({patient_id for _, patient_id in pairs}))
    found = {(row.org, row.id) for row in uow.session.execute(query)}
    return found & pairs
