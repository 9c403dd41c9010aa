"""One resource, one expected update: the code tables and rules of the mapping over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import col

from carepath.apps import create_intake_app
from shared.db.tables import PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.fhir.fhir_support import post_bundle

pytestmark = pytest.mark.integration
CPT = "http://www.ama-assn.org/go/cpt"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
SUBJECT = {"reference": "Patient/p-map"}
AT = "2026-05-01T09:00:00+02:00"


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_intake_app())


def procedure(*codings: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": SUBJECT,
        "code": {"coding": [{"system": s, "code": c} for s, c in codings]},
        "performedPeriod": {"start": AT, "end": "2026-05-01T10:00:00+02:00"},
    }


def medication_request(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"coding": [{"system": RX, "code": code, **extra}]},
        "authoredOn": AT,
    }


def stored(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = uow.session.execute(
            select(PatientUpdate.type, PatientUpdate.data).order_by(col(PatientUpdate.occurred_at))
        ).all()
    return [(row[0], row[1]) for row in rows]


CASES: dict[str, tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]] = {
    "CPT 63030 laminotomy": ([procedure((CPT, "63030"))], [("surgery", {"procedure": "laminectomy_foraminotomy"})]),
    "SNOMED CT laminectomy": ([procedure((SCT, "387731002"))], [("surgery", {"procedure": "laminectomy"})]),
    "SNOMED CT discectomy": ([procedure((SCT, "42515009"))], [("surgery", {"procedure": "discectomy"})]),
    "CPT 63042 re-exploration is a repeat surgery": (
        [procedure((CPT, "63042"))],
        [("procedure", {"kind": "repeat_surgery"})],
    ),
    "CPT 64483 transforaminal ESI": (
        [procedure((CPT, "64483"))],
        [("procedure", {"kind": "epidural_steroid_injection", "approach": "transforaminal", "image_guided": True})],
    ),
    "CPT 64493 medial branch block": (
        [procedure((CPT, "64493"))],
        [("procedure", {"kind": "medial_branch_block", "image_guided": True})],
    ),
    "CPT 64635 RF denervation": (
        [procedure((CPT, "64635"))],
        [("procedure", {"kind": "radiofrequency_denervation", "image_guided": True})],
    ),
    "CPT 63650 alone is an SCS trial": ([procedure((CPT, "63650"))], [("procedure", {"kind": "scs_trial"})]),
    "CPT 63650 with 63685 is the implant": (
        [procedure((CPT, "63650"), (CPT, "63685"))],
        [("procedure", {"kind": "scs_implant"})],
    ),
    "CPT 62380 endoscopic decompression": (
        [procedure((CPT, "62380"))],
        [("procedure", {"kind": "endoscopic_decompression"})],
    ),
    "benzodiazepine from the value set": (
        [medication_request("197901")],
        [("medication", {"drug_class": "benzodiazepine", "action": "started", "name": "lorazepam 1 MG Oral Tablet"})],
    ),
    "gabapentin by ingredient code": (
        [medication_request("25480", display="gabapentin")],
        [("medication", {"drug_class": "gabapentinoid", "action": "started", "name": "gabapentin"})],
    ),
    "duloxetine product by its RxNorm name": (
        [medication_request("596926", display="duloxetine 30 MG Delayed Release Oral Capsule")],
        [
            (
                "medication",
                {"drug_class": "snri", "action": "started", "name": "duloxetine 30 MG Delayed Release Oral Capsule"},
            )
        ],
    ),
    "a stopped MedicationStatement records start and stop": (
        [
            {
                "resourceType": "MedicationStatement",
                "status": "completed",
                "subject": SUBJECT,
                "medicationCodeableConcept": {"coding": [{"system": RX, "code": "25480", "display": "gabapentin"}]},
                "effectivePeriod": {"start": AT, "end": "2026-06-01T09:00:00+02:00"},
            }
        ],
        [
            ("medication", {"drug_class": "gabapentinoid", "action": "started", "name": "gabapentin"}),
            ("medication", {"drug_class": "gabapentinoid", "action": "stopped", "name": "gabapentin"}),
        ],
    ),
    "CBT referral": (
        [
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": SUBJECT,
                "code": {"coding": [{"system": SCT, "code": "228557008"}]},
                "authoredOn": AT,
            }
        ],
        [("therapy", {"kind": "cbt", "status": "referred"})],
    ),
    "CT from an ImagingStudy": (
        [
            {
                "resourceType": "ImagingStudy",
                "status": "available",
                "subject": SUBJECT,
                "started": AT,
                "series": [
                    {
                        "uid": "1.2.3",
                        "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
                    }
                ],
            }
        ],
        [("imaging", {"modality": "ct", "findings": []})],
    ),
    "a medicationReference to a Medication of the Bundle": (
        [
            {"resourceType": "Medication", "id": "med-1", "code": {"coding": [{"system": RX, "code": "197901"}]}},
            {
                **{k: v for k, v in medication_request("0").items() if k != "medicationCodeableConcept"},
                "medicationReference": {"reference": "Medication/med-1"},
            },
        ],
        [("medication", {"drug_class": "benzodiazepine", "action": "started", "name": "lorazepam 1 MG Oral Tablet"})],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_resource_maps_to_update(client: TestClient, settings: Settings, case: str) -> None:
    resources, expected = CASES[case]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r} for r in resources]}
    response = post_bundle(client, settings, bundle)
    assert response.status_code == 200, response.text
    assert stored(settings) == expected


def test_pt_attendance_is_started_once_then_progress_across_bundles(client: TestClient, settings: Settings) -> None:
    def visit(day: int) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Encounter",
                        "id": f"pt-{day}",
                        "status": "finished",
                        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                        "subject": SUBJECT,
                        "serviceType": {"coding": [{"system": SCT, "code": "91251008"}]},
                        "period": {"start": f"2026-05-{day:02d}T14:00:00+02:00"},
                    }
                }
            ],
        }

    for day in (4, 11):
        assert post_bundle(client, settings, visit(day)).status_code == 200
    assert [data["status"] for _type, data in stored(settings)] == ["started", "progress"]
