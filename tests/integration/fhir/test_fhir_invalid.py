"""Invalid FHIR is an OperationOutcome naming the element (`expression`), and a refused Bundle stores nothing:
the rows of every table are counted before and after."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationoutcome import OperationOutcome

from carepath.apps import create_intake_app
from shared.settings import Settings
from tests.integration.fhir.fhir_support import FHIR_JSON, auth, load, post_bundle, row_counts

pytestmark = pytest.mark.integration


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_intake_app())


def course() -> dict[str, Any]:
    document: dict[str, Any] = load("postlaminectomy-course.bundle.json")
    return document


def entry_of(document: dict[str, Any], resource_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = next(e["resource"] for e in document["entry"] if e["resource"].get("id") == resource_id)
    return resource


def expressions(response: Any) -> list[str]:
    outcome = OperationOutcome.model_validate(response.json())  # a valid OperationOutcome
    return [expression for issue in outcome.issue for expression in issue.expression or []]


def _wrong_bundle_type(d: dict[str, Any]) -> None:
    d["resourceType"] = "Patient"


def _unknown_entry_type(d: dict[str, Any]) -> None:
    d["entry"][1]["resource"]["resourceType"] = "Procedur"


def _missing_subject(d: dict[str, Any]) -> None:
    del entry_of(d, "ex-proc-1")["subject"]


def _string_for_number(d: dict[str, Any]) -> None:
    entry_of(d, "ex-obs-pain-1")["valueInteger"] = "seven"


def _out_of_range(d: dict[str, Any]) -> None:
    entry_of(d, "ex-obs-pain-1")["valueInteger"] = 11


def _date_without_time(d: dict[str, Any]) -> None:
    entry_of(d, "ex-proc-1")["performedDateTime"] = "2026-03-02"


def _unknown_element(d: dict[str, Any]) -> None:
    entry_of(d, "ex-mr-oxy")["dosageInstruction"][0]["doseQuantity"] = {"value": 1}


def _no_body_site(d: dict[str, Any]) -> None:
    del entry_of(d, "ex-obs-pain-1")["bodySite"]


def _batch_type(d: dict[str, Any]) -> None:
    d["type"] = "collection"


CASES = {
    "wrong resourceType": (_wrong_bundle_type, "resourceType"),
    "unknown resource type in an entry": (_unknown_entry_type, "Bundle.entry[1].resource.resourceType"),
    "missing subject": (_missing_subject, "Bundle.entry[1].resource.subject"),
    "a string where a number belongs": (_string_for_number, "Bundle.entry[2].resource.valueInteger"),
    "pain score out of range": (_out_of_range, "Bundle.entry[2].resource"),
    "a date without time": (_date_without_time, "Bundle.entry[1].resource.performedDateTime"),
    "an unknown element": (_unknown_element, "Bundle.entry[10].resource.dosageInstruction[0].doseQuantity"),
    "pain without its distribution": (_no_body_site, "Bundle.entry[2].resource.bodySite"),
    "a Bundle that is neither transaction nor batch": (_batch_type, "Bundle.type"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_invalid_transaction_is_an_operation_outcome_and_stores_nothing(
    client: TestClient, settings: Settings, case: str
) -> None:
    change, expression = CASES[case]
    document = copy.deepcopy(course())
    change(document)
    before = row_counts(settings)
    response = post_bundle(client, settings, document)
    assert response.status_code == 422, response.text
    assert expression in expressions(response), expressions(response)
    assert row_counts(settings) == before
    # The valid course afterwards is stored: the refusal left nothing behind that blocks it.
    assert post_bundle(client, settings, course()).status_code == 200


def test_unknown_code_alone_is_422_naming_the_code(client: TestClient, settings: Settings) -> None:
    document = course()
    procedure = entry_of(document, "ex-proc-1")
    procedure["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "44970"}]}  # appendectomy
    before = row_counts(settings)
    response = post_bundle(client, settings, {**document, "entry": [document["entry"][0], document["entry"][1]]})
    assert response.status_code == 422
    outcome = response.json()
    assert "Bundle.entry[1].resource.code" in expressions(response)
    assert all(issue["severity"] == "error" for issue in outcome["issue"])
    assert row_counts(settings) == before


def test_unmappable_entries_are_reported_and_the_rest_recorded(client: TestClient, settings: Settings) -> None:
    document = course()
    procedure = entry_of(document, "ex-proc-1")
    procedure["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "44970"}]}
    allergy = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/ex-pat-1"},
        "code": {"text": "penicillin"},
    }
    document["entry"].append({"resource": allergy, "request": {"method": "POST", "url": "AllergyIntolerance"}})
    response = post_bundle(client, settings, document)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[1]["response"]["status"] == "422 Unprocessable Entity"
    assert entries[1]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.code"]
    assert entries[-1]["response"]["status"] == "422 Unprocessable Entity"
    assert sum(e["response"]["status"] == "201 Created" for e in entries) == 9


def test_a_batch_stores_its_valid_entries(client: TestClient, settings: Settings) -> None:
    document = {**course(), "type": "batch"}
    entry_of(document, "ex-obs-pain-1")["valueInteger"] = "seven"
    response = post_bundle(client, settings, document)
    assert response.status_code == 200
    assert response.json()["type"] == "batch-response"
    entries = response.json()["entry"]
    assert entries[2]["response"]["status"] == "400 Bad Request"
    assert entries[2]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[2].resource.valueInteger"]
    assert sum(e["response"]["status"] == "201 Created" for e in entries) == 9


def test_not_json_and_wrong_media_type(client: TestClient, settings: Settings) -> None:
    before = row_counts(settings)
    broken = client.post("/fhir/r4", content=b'{"resourceType": "Bundle",', headers={**auth(settings), **FHIR_JSON})
    assert broken.status_code == 422 and broken.json()["resourceType"] == "OperationOutcome"
    text = client.post(
        "/fhir/r4", content=json.dumps(course()), headers={**auth(settings), "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    plain_json = client.post(
        "/fhir/r4", content=json.dumps(course()), headers={**auth(settings), "Content-Type": "application/json"}
    )
    assert plain_json.status_code == 200
    assert row_counts(settings) != before


def test_messages_carry_no_clinical_values(client: TestClient, settings: Settings) -> None:
    document = course()
    entry_of(document, "ex-obs-pain-1")["valueInteger"] = 11
    response = post_bundle(client, settings, document)
    assert response.status_code == 422
    assert "EX-0001" not in response.text


def test_readers_may_not_post(client: TestClient, settings: Settings) -> None:
    response = client.post("/fhir/r4", content=json.dumps(course()), headers={**FHIR_JSON})
    assert response.status_code == 401


def test_a_resource_id_of_another_patient_is_refused(client: TestClient, settings: Settings) -> None:
    pain = copy.deepcopy(entry_of(course(), "ex-obs-pain-1"))
    pain["subject"] = {"reference": "Patient/first"}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": pain}]}
    assert post_bundle(client, settings, batch).status_code == 200
    before = row_counts(settings)
    pain = {**pain, "subject": {"reference": "Patient/second"}, "meta": {"versionId": "2"}}
    response = post_bundle(client, settings, {**batch, "entry": [{"resource": pain}]})
    assert response.status_code == 422
    assert "Bundle.entry[0].resource.subject" in expressions(response)
    # The second patient's link was created in the refused request's transaction: rolled back with it.
    assert row_counts(settings) == before
