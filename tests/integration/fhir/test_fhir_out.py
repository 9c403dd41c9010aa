"""FHIR out: the stored assessment as a CarePlan (activities = deadlines), the CapabilityStatement; and the
risk Conditions that map to psychosocial factors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careplan import CarePlan
from sqlalchemy import select
from sqlmodel import col

from carepath.apps import create_intake_app
from services.pathway.handler import evaluate_patient  # the worker's evaluation, run in process
from shared.db.tables import Patient, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.fhir.fhir_support import auth, load, post_bundle, row_counts

pytestmark = pytest.mark.integration


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_intake_app())


def the_patient(settings: Settings) -> str:
    with UnitOfWork(settings, read_only=True) as uow:
        found: str = uow.session.execute(select(Patient.id).where(col(Patient.org) == "org-a")).scalar_one()
        return found


def test_careplan_of_the_stored_assessment(client: TestClient, settings: Settings) -> None:
    assert post_bundle(client, settings, load("postlaminectomy-course.bundle.json")).status_code == 200
    patient_id = the_patient(settings)
    empty = client.get("/fhir/r4/CarePlan", params={"patient": "Patient/ex-pat-1"}, headers=auth(settings))
    assert empty.status_code == 200 and empty.json()["total"] == 0  # not evaluated yet
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "update")
        uow.commit()
    pathway = client.get(f"/v1/patients/{patient_id}/pathway", headers=auth(settings)).json()
    for value in ("Patient/ex-pat-1", "ex-pat-1", patient_id):
        response = client.get("/fhir/r4/CarePlan", params={"patient": value}, headers=auth(settings))
        assert response.status_code == 200
        bundle = Bundle.model_validate(response.json())
        assert bundle.type == "searchset" and bundle.total == 1
    plan = CarePlan.model_validate(response.json()["entry"][0]["resource"])
    assert plan.subject.reference == "Patient/ex-pat-1"
    assert plan.category[0].coding[0].code == pathway["stage"]
    activities = [
        (a.detail.code.coding[0].code, a.detail.status, a.detail.scheduledPeriod.end.isoformat()) for a in plan.activity
    ]
    status = {"pending": "scheduled", "satisfied": "completed", "cancelled": "cancelled"}
    expected = [(d["kind"], status[d["status"]], d["due_at"].replace("Z", "+00:00")) for d in pathway["deadlines"]]
    assert activities == expected and activities
    other = client.get("/fhir/r4/CarePlan", params={"patient": patient_id}, headers=auth(settings, "org-b"))
    assert other.json()["total"] == 0


def test_capability_statement_lists_what_is_accepted(client: TestClient) -> None:
    response = client.get("/fhir/r4/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    types = {r.type for r in statement.rest[0].resource}
    assert {"Procedure", "Observation", "MedicationRequest", "MedicationStatement", "ServiceRequest"} <= types
    assert {"Encounter", "ImagingStudy", "DiagnosticReport", "Condition", "CarePlan", "Patient"} <= types
    assert {i.code for i in statement.rest[0].interaction} == {"transaction", "batch"}


def _condition(code: dict[str, Any], clinical: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"cond-{code['code']}",
                    "clinicalStatus": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
                        ]
                    },
                    "code": {"coding": [code]},
                    "subject": {"reference": "Patient/ex-pat-9"},
                    "onsetDateTime": "2024-05-01T00:00:00+00:00",
                }
            }
        ],
    }


def test_cauda_equina_condition_is_a_red_flag(client: TestClient, settings: Settings) -> None:
    response = post_bundle(client, settings, _condition({"system": "http://hl7.org/fhir/sid/icd-10", "code": "G83.4"}))
    assert response.status_code == 200, response.text
    with UnitOfWork(settings, read_only=True) as uow:
        row = uow.session.execute(select(PatientUpdate.type, PatientUpdate.data)).one()
    assert tuple(row) == ("neuro_exam", {"progressive_deficit": False, "cauda_equina_signs": True})
    resolved = post_bundle(
        client, settings, _condition({"system": "http://snomed.info/sct", "code": "192970008"}, "resolved")
    )
    assert resolved.status_code == 422  # a resolved red flag maps to nothing


RISKS = {
    "substance_use_disorder": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"},
    "prior_overdose": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "T40.2X1A"},
}


@pytest.mark.parametrize("factor", RISKS, ids=list(RISKS))
def test_risk_conditions_map_to_psychosocial_factors(client: TestClient, settings: Settings, factor: str) -> None:
    before = row_counts(settings)
    response = post_bundle(client, settings, _condition(RISKS[factor], "resolved"))
    assert response.status_code == 200, response.text
    with UnitOfWork(settings, read_only=True) as uow:
        row = uow.session.execute(select(PatientUpdate.type, PatientUpdate.data)).one()
    assert tuple(row) == ("psychosocial", {"factors": [factor]})
    assert row_counts(settings) != before
