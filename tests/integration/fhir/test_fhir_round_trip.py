"""FHIR R4 Bundles (built with fhir.resources R4B) give the same stored updates and the same assessment as
the equivalent native updates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select
from sqlmodel import col

from carepath.apps import create_intake_app
from shared.db.tables import OutboxMessage, Patient, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.fhir.fhir_support import auth, load, post_bundle, row_counts

pytestmark = pytest.mark.integration
NOW = "2026-07-01T00:00:00Z"


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_intake_app())


def course_bundle() -> Bundle:
    return Bundle.model_validate(load("postlaminectomy-course.bundle.json"))


def stored(settings: Settings, patient_id: str) -> list[dict[str, Any]]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = uow.session.execute(
            select(PatientUpdate)
            .where(col(PatientUpdate.patient_id) == patient_id)
            .order_by(col(PatientUpdate.occurred_at), col(PatientUpdate.type))
        ).scalars()
        return [{"type": r.type, "occurred_at": r.occurred_at_text, "data": r.data} for r in rows]


def fhir_patient_id(settings: Settings, org: str = "org-a") -> str:
    with UnitOfWork(settings, read_only=True) as uow:
        ids = uow.session.execute(
            select(Patient.id).where(col(Patient.org) == org, col(Patient.external_id).startswith("fhir:"))
        ).scalars()
        (only,) = list(ids)
        return only


def test_course_bundle_stores_the_native_updates_and_gives_the_same_assessment(
    client: TestClient, settings: Settings
) -> None:
    headers = auth(settings)
    response = post_bundle(client, settings, course_bundle().model_dump(mode="json", exclude_none=True))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = Bundle.model_validate(response.json())
    assert body.type == "transaction-response"
    statuses = [entry.response.status for entry in body.entry]
    assert statuses.count("201 Created") == 10, statuses  # every clinical entry but the reported ImagingStudy

    patient_id = fhir_patient_id(settings)
    assert response.json()["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"] == (
        f"linked to carepath patient {patient_id}"
    )
    native = load("postlaminectomy-course.native.json")["updates"]
    native_id = client.post("/v1/patients", json={"external_id": "NATIVE-1"}, headers=headers).json()["id"]
    assert (
        client.post(f"/v1/patients/{native_id}/updates:batch", json={"updates": native}, headers=headers).status_code
        == 202
    )
    assert stored(settings, patient_id) == stored(settings, native_id)

    from_fhir = client.post(
        "/v1/pathway:evaluate", json={"updates": stored(settings, patient_id), "now": NOW}, headers=headers
    ).json()
    from_native = client.post("/v1/pathway:evaluate", json={"updates": native, "now": NOW}, headers=headers).json()
    assert from_fhir == from_native
    assert from_fhir["stage"] == "first_line"
    assert any(d["kind"] == "opioid_review_4w" for d in from_fhir["deadlines"])
    # One event for the patient's updates, as a native batch makes.
    with UnitOfWork(settings, read_only=True) as uow:
        events = uow.session.execute(select(OutboxMessage.event_id).distinct()).scalars()
        assert len(list(events)) == 2  # the FHIR Bundle's and the native batch's


def test_replaying_the_bundle_stores_nothing_new(client: TestClient, settings: Settings) -> None:
    document = course_bundle().model_dump(mode="json", exclude_none=True)
    assert post_bundle(client, settings, document).status_code == 200
    before = row_counts(settings)
    again = post_bundle(client, settings, document)
    assert again.status_code == 200, again.text
    assert {e["response"]["status"] for e in again.json()["entry"]} <= {"200 OK", "422 Unprocessable Entity"}
    assert row_counts(settings) == before


def test_the_same_resource_by_identifier_is_stored_once(client: TestClient, settings: Settings) -> None:
    pain = {
        "resourceType": "Observation",
        "identifier": [{"system": "https://hospital.example/fhir/sid/obs", "value": "OBS-1"}],
        "status": "final",
        "subject": {"identifier": {"system": "https://hospital.example/fhir/sid/mrn", "value": "EX-0002"}},
        "code": {"coding": [{"system": "http://loinc.org", "code": "38208-5"}]},
        "effectiveDateTime": "2026-04-06T10:00:00+02:00",
        "valueQuantity": {"value": 6},
        "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "37822005"}]},
    }
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": pain}]}
    assert post_bundle(client, settings, batch).status_code == 200
    before = row_counts(settings)
    # Another id but the same identifier: the same resource.
    again = post_bundle(client, settings, {**batch, "entry": [{"resource": {**pain, "id": "other-server-id"}}]})
    assert again.status_code == 200
    assert row_counts(settings) == before
    assert stored(settings, fhir_patient_id(settings))[0]["data"] == {
        "pain_nrs": 6,
        "distribution": "axial",
        "facet_suspected": False,
    }


def test_a_stopped_medication_request_records_the_stop(client: TestClient, settings: Settings) -> None:
    document = course_bundle().model_dump(mode="json", exclude_none=True)
    assert post_bundle(client, settings, document).status_code == 200
    oxycodone = next(e["resource"] for e in document["entry"] if e["resource"].get("id") == "ex-mr-oxy")
    stopped = {**oxycodone, "status": "stopped", "meta": {"versionId": "2", "lastUpdated": "2026-05-20T08:00:00+02:00"}}
    patient = {"reference": "Patient/ex-pat-1"}
    response = post_bundle(
        client,
        settings,
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {**stopped, "subject": patient}}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"] == "201 Created"
    last = stored(settings, fhir_patient_id(settings))[-1]
    assert last == {
        "type": "medication",
        "occurred_at": "2026-05-20T08:00:00+02:00",
        "data": {"drug_class": "opioid_ir", "action": "stopped", "name": "oxycodone hydrochloride 5 MG Oral Tablet"},
    }
    # The same stop again is the same version: stored once.
    before = row_counts(settings)
    post_bundle(
        client,
        settings,
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {**stopped, "subject": patient}}]},
    )
    assert row_counts(settings) == before


def test_patient_links_are_per_organisation(client: TestClient, settings: Settings) -> None:
    document = course_bundle().model_dump(mode="json", exclude_none=True)
    assert post_bundle(client, settings, document).status_code == 200
    assert post_bundle(client, settings, document, org="org-b").status_code == 200
    a, b = fhir_patient_id(settings, "org-a"), fhir_patient_id(settings, "org-b")
    assert a != b
    assert len(stored(settings, b)) == 10
    # org-b cannot read org-a's patient through the FHIR link or the carepath id.
    for value in ("Patient/ex-pat-1", a):
        found = client.get("/fhir/r4/CarePlan", params={"patient": value}, headers=auth(settings, "org-c"))
        assert found.status_code == 200 and found.json().get("total") == 0


def _opioid_order(dosage: dict[str, Any], code: str = "1049621") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": f"mr-{code}",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": "Patient/p-mme"},
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code}]
                    },
                    "authoredOn": "2026-05-01T09:00:00+02:00",
                    "dosageInstruction": [dosage],
                }
            }
        ],
    }


def test_mme_from_the_dosage_is_stored_or_reported(client: TestClient, settings: Settings) -> None:
    patch = {
        "timing": {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch"}}],
    }
    response = post_bundle(client, settings, _opioid_order(patch, "197696"))
    assert response.status_code == 200, response.text
    (update,) = stored(settings, fhir_patient_id(settings))
    assert update["data"]["drug_class"] == "opioid_er" and update["data"]["mme_per_day"] == 180.0

    prn = {"asNeededBoolean": True, "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}
    order = _opioid_order(prn)
    order["entry"][0]["resource"]["authoredOn"] = "2026-06-01T09:00:00+02:00"
    response = post_bundle(client, settings, order)
    assert response.status_code == 200
    outcome = response.json()["entry"][0]["response"]["outcome"]
    assert any(
        issue["severity"] == "warning" and "without mme_per_day" in issue["diagnostics"] for issue in outcome["issue"]
    )
    opioid = stored(settings, fhir_patient_id(settings))[-1]["data"]
    assert opioid["drug_class"] == "opioid_ir" and "mme_per_day" not in opioid


def test_idempotency_key_replays_the_first_answer(client: TestClient, settings: Settings) -> None:
    document = course_bundle().model_dump(mode="json", exclude_none=True)
    headers = {**auth(settings), "Content-Type": "application/fhir+json", "Idempotency-Key": "ehr-msg-1"}
    first = client.post("/fhir/r4", content=json.dumps(document), headers=headers)
    assert first.status_code == 200
    before = row_counts(settings)
    again = client.post("/fhir/r4", content=json.dumps(document), headers=headers)
    assert again.status_code == 200 and again.json() == first.json()  # the first answer, 201s included
    assert row_counts(settings) == before
    other = client.post("/fhir/r4", content=json.dumps({**document, "type": "batch"}), headers=headers)
    assert other.status_code == 422 and other.json()["resourceType"] == "OperationOutcome"
    assert row_counts(settings) == before


def test_new_versions_record_dose_changes_and_never_amend_facts(client: TestClient, settings: Settings) -> None:
    document = course_bundle().model_dump(mode="json", exclude_none=True)
    assert post_bundle(client, settings, document).status_code == 200
    oxycodone = next(e["resource"] for e in document["entry"] if e["resource"].get("id") == "ex-mr-oxy")
    pain = next(e["resource"] for e in document["entry"] if e["resource"].get("id") == "ex-obs-pain-1")
    patient = {"reference": "Patient/ex-pat-1"}
    doubled = {
        **oxycodone,
        "subject": patient,
        "meta": {"versionId": "2", "lastUpdated": "2026-05-15T08:00:00+02:00"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}],
            }
        ],
    }
    corrected = {**pain, "subject": patient, "status": "corrected", "valueInteger": 5, "meta": {"versionId": "2"}}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": doubled}, {"resource": corrected}]}
    response = post_bundle(client, settings, batch)
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created", "200 OK"]
    updates = stored(settings, fhir_patient_id(settings))
    assert updates[-1] == {
        "type": "medication",
        "occurred_at": "2026-05-15T08:00:00+02:00",
        "data": {
            "drug_class": "opioid_ir",
            "action": "dose_increased",
            "mme_per_day": 60.0,
            "name": "oxycodone hydrochloride 5 MG Oral Tablet",
        },
    }
    assert [u["data"].get("pain_nrs") for u in updates if u["type"] == "pain_assessment"] == [7]
