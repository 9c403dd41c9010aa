"""The stored pathway as FHIR: the newest stored assessment of a patient as a CarePlan whose activities are
its deadlines (status and due time). Reads the assessment rows (shared.db.tables), not the pathway service."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from sqlalchemy import select
from sqlmodel import col

from shared.clock import isoformat
from shared.db.tables import Assessment, FhirPatientLink, Patient
from shared.db.uow import UnitOfWork

DEADLINE_SYSTEM = "urn:carepath:fhir:deadline-kind"
STAGE_SYSTEM = "urn:carepath:fhir:pathway-stage"
# deadline status → CarePlan.activity.detail.status
ACTIVITY_STATUS = {"pending": "scheduled", "satisfied": "completed", "cancelled": "cancelled"}


def find_patient_for_search(uow: UnitOfWork, org: str, value: str) -> Patient | None:
    """`patient=` as a FHIR Patient id linked in this organisation (Patient/<id> or <id>), or a carepath id."""
    bare = value.removeprefix("Patient/")
    link = uow.session.execute(
        select(FhirPatientLink).where(
            col(FhirPatientLink.org) == org, col(FhirPatientLink.kind) == "id", col(FhirPatientLink.key) == bare
        )
    ).scalar_one_or_none()
    patient_id = link.patient_id if link is not None else bare
    query = select(Patient).where(col(Patient.id) == patient_id, col(Patient.org) == org)
    patient: Patient | None = uow.session.execute(query).scalar_one_or_none()
    return patient


def _subject(uow: UnitOfWork, patient: Patient) -> dict[str, Any]:
    links = uow.session.execute(
        select(FhirPatientLink).where(col(FhirPatientLink.patient_id) == patient.id).order_by(col(FhirPatientLink.kind))
    ).scalars()
    for link in links:
        if link.kind == "id":
            return {"reference": f"Patient/{link.key}"}
        system, _, value = link.key.partition("|")
        return {"identifier": {"system": system, "value": value} if system else {"value": value}}
    return {"identifier": {"system": "urn:carepath:patient", "value": patient.id}}


def careplan(uow: UnitOfWork, patient: Patient) -> dict[str, Any] | None:
    row = uow.session.execute(
        select(Assessment).where(col(Assessment.patient_id) == patient.id).order_by(col(Assessment.seq).desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    body = row.body
    activities = []
    for deadline in body.get("deadlines", []):
        detail: dict[str, Any] = {
            "kind": "Task",
            "code": {"coding": [{"system": DEADLINE_SYSTEM, "code": deadline["kind"]}], "text": deadline.get("text")},
            "status": ACTIVITY_STATUS.get(deadline.get("status", ""), "unknown"),
            "scheduledPeriod": {"end": deadline["due_at"]},
        }
        if deadline.get("citation"):
            detail["description"] = f"{deadline.get('text', '')} [{deadline['citation']}]".strip()
        activities.append({"detail": detail})
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": f"{patient.id}-{row.seq}",
        "meta": {"versionId": str(row.seq), "lastUpdated": isoformat(row.evaluated_at)},
        "status": "active",
        "intent": "plan",
        "title": "carepath pathway",
        "description": f"stage {body.get('stage')} (rule set {row.rule_set_version}, profile {row.profile})",
        "category": [{"coding": [{"system": STAGE_SYSTEM, "code": str(body.get("stage"))}]}],
        "subject": _subject(uow, patient),
        "created": isoformat(row.evaluated_at),
        "activity": activities,
    }
    if body.get("stage_since"):
        resource["period"] = {"start": body["stage_since"]}
    model = CarePlan.model_validate(resource)
    result: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return result


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        }
    )
    result: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return result
