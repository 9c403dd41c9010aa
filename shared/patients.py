"""Patient lookup scoped to an organisation, and the error every service shares for "no such patient"."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from shared.db.tables import Patient
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
