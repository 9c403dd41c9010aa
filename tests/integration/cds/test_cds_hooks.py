"""CDS Hooks 2.0: discovery, the real requests of the CDC IG, order-sign what-ifs (stored nowhere),
patient matching and organisation scoping, the EHR's FHIR server when prefetch is missing."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.pathway.cds.cards import card_problems, response_problems
from shared.db.tables import metadata
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.cds.cds_support import (
    BASE,
    TEMAZEPAM,
    Keys,
    Loopback,
    bearer,
    call,
    carepath_auth,
    client_jwt,
    codes,
    example,
    fentanyl_draft,
    first_line_history,
    medication_request,
    order_sign,
    seed_patient,
)

pytestmark = pytest.mark.integration
DOC = (Path(__file__).resolve().parents[3] / "docs" / "interop.md").read_text()


def row_counts(settings: Settings) -> dict[str, int]:
    with UnitOfWork(settings, read_only=True) as uow:
        return {
            name: uow.session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in sorted(metadata.tables.items())
            if name != "cds_jwt_use"  # each call records its JWT id (replay protection)
        }


def test_discovery_lists_the_services_with_prefetch(client: TestClient, keys: Keys) -> None:
    response = client.get(BASE, headers=bearer(client_jwt(keys, BASE)))
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert services["carepath-patient-view"]["hook"] == "patient-view"
    assert services["carepath-order-sign"]["hook"] == "order-sign"
    assert services["carepath-order-select"]["hook"] == "order-select"
    for described in services.values():
        assert described["description"] and described["title"]
        assert described["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert (
        "MedicationRequest?patient={{context.patientId}}" in services["carepath-order-sign"]["prefetch"]["medications"]
    )
    assert client.get(BASE).status_code == 401


def test_the_real_order_sign_request_on_benzodiazepine(client: TestClient, settings: Settings, keys: Keys) -> None:
    """The IG's rec-08 request as sent: `Patient/<id>`, null prefetch keys, a draft whose id collides with
    the prefetched temazepam order. Both count: the fentanyl patch is new, the benzodiazepine is active."""
    request = example("request-example-rec-08-on-benzodiazepine.json")
    seed_patient(client, settings, "example-rec-08-on-benzodiazepine", first_line_history())
    answer = call(client, keys, "carepath-order-sign", request)
    found = codes(answer)
    assert "opioid_benzodiazepine_coprescription" in found
    assert "naloxone_indicated" in found  # a benzodiazepine course is open: a risk
    assert "er_opioid_before_first_line_failed" in found
    reference = example("response-example-rec-08-on-benzodiazepine.json")["cards"][0]
    naloxone = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "naloxone_indicated")
    assert naloxone["indicator"] == reference["indicator"] == "warning"
    assert "benzodiazepine" in naloxone["detail"]
    assert naloxone["source"]["url"].startswith("https://www.cdc.gov/")
    assert "CDC Clinical Practice Guideline for Prescribing Opioids" in naloxone["detail"]


def test_the_real_order_sign_request_without_the_benzodiazepine(
    client: TestClient, settings: Settings, keys: Keys
) -> None:
    request = example("request-example-rec-08-on-benzodiazepine.json")
    del request["prefetch"]["item2"]  # only the Patient is prefetched now (and no fhirAuthorization: no fetch)
    seed_patient(client, settings, "example-rec-08-on-benzodiazepine", first_line_history())
    found = codes(call(client, keys, "carepath-order-sign", request))
    assert "opioid_benzodiazepine_coprescription" not in found
    # 0.2 patch of 75 mcg/h: 0.2 × 75 × 2.4 = 36 MME/day, below 50: without the benzodiazepine no risk.
    assert "naloxone_indicated" not in found
    assert "er_opioid_before_first_line_failed" in found


def test_the_real_mme_less_than_fifty_request(client: TestClient, settings: Settings, keys: Keys) -> None:
    """rec-04/05: the draft is RxNorm 892495 (a branded drug component, "Morphine Sulfate 10 MG [Kadian]"), in
    none of the CDC value sets: carepath does not guess a class from a name, so no card, as the reference."""
    request = example("request-example-rec-04-05-mme-less-than-fifty.json")
    seed_patient(client, settings, "example-rec-05-mme-less-than-fifty", first_line_history())
    reference = example("response-example-rec-04-05-mme-less-than-fifty.json")
    assert call(client, keys, "carepath-order-sign", request) == reference == {"cards": []}
    # The same request with a product of the opioid value set answers (the patient was matched).
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["medicationCodeableConcept"]["coding"][0].update(
        code="1049621", display="oxycodone hydrochloride 5 MG Oral Tablet"
    )
    found = codes(call(client, keys, "carepath-order-sign", request))
    assert "opioid_before_non_opioid_trial" in found and "naloxone_indicated" not in found  # 7.5 MME/day


def test_the_real_patient_view_request(client: TestClient, settings: Settings, keys: Keys) -> None:
    request = example("request-example-rec-11-patient-view-opioid-trigger-without-benzo.json")
    history = first_line_history() + [
        {
            "type": "medication",
            "occurred_at": first_line_history()[3]["occurred_at"],
            "data": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 90},
        }
    ]
    patient_id = seed_patient(client, settings, "example-rec-11-opioid-trigger-without-benzo", history)
    answer = call(client, keys, "carepath-patient-view", request)
    pathway = client.get(f"/v1/patients/{patient_id}/pathway", headers=carepath_auth(settings)).json()
    stage = answer["cards"][0]
    assert stage["source"]["topic"]["code"] == pathway["stage"] == "first_line"
    assert sorted(codes(answer)[1:]) == sorted(flag["code"] for flag in pathway["flags"])
    assert "naloxone_indicated" in codes(answer)
    recommendation = next(r for r in pathway["recommendations"] if r["code"] == "naloxone_indicated")
    card = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "naloxone_indicated")
    assert card["detail"].startswith(recommendation["text"])


def test_fentanyl_patch_in_first_line(client: TestClient, settings: Settings, keys: Keys) -> None:
    """A draft fentanyl 75 mcg/h patch (180 MME/day) for a patient in first line; stored nowhere."""
    patient_id = seed_patient(client, settings, "pat-fentanyl", first_line_history())
    assert (
        client.get(f"/v1/patients/{patient_id}/pathway", headers=carepath_auth(settings)).json()["stage"]
        == "first_line"
    )
    before = row_counts(settings)
    answer = call(client, keys, "carepath-order-sign", order_sign("pat-fentanyl", fentanyl_draft()))
    assert {"naloxone_indicated", "er_opioid_before_first_line_failed", "opioid_before_non_opioid_trial"} <= set(
        codes(answer)
    )
    assert "opioid_benzodiazepine_coprescription" not in codes(answer)
    naloxone = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "naloxone_indicated")
    assert "180" in naloxone["detail"]
    action = naloxone["suggestions"][0]["actions"][0]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "MedicationRequest"
    assert action["resource"]["subject"]["reference"] == "Patient/pat-fentanyl"
    assert naloxone["overrideReasons"] and all(r["code"] and r["system"] for r in naloxone["overrideReasons"])
    assert row_counts(settings) == before  # a what-if: nothing stored
    # Flags the patient already has are not repeated: imaging etc. are complete; no stage card on order-sign.
    assert "imaging_needed" not in codes(answer)
    # The same draft through order-select answers the same flags.
    select_body = order_sign("pat-fentanyl", fentanyl_draft())
    select_body["hook"] = "order-select"
    select_body["context"]["selections"] = ["MedicationRequest/draft-1"]
    assert set(codes(call(client, keys, "carepath-order-select", select_body))) == set(codes(answer))


def test_benzodiazepine_in_prefetch_yields_the_coprescription_card(
    client: TestClient, settings: Settings, keys: Keys
) -> None:
    seed_patient(client, settings, "pat-benzo", first_line_history())
    benzo = medication_request(*TEMAZEPAM, dose=1, unit="{tablet}", id_="draft-1")  # same id as the draft
    wrapped = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"response": {"status": "200"}, "resource": benzo}],
    }
    oxycodone = medication_request(
        "1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=1, unit="{tablet}", per_days=0.25, status="draft"
    )
    draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {**oxycodone, "id": "draft-1"}}]}
    prefetch = {"patient": {"resourceType": "Patient", "id": "pat-benzo"}, "medications": wrapped, "other": None}
    found = codes(call(client, keys, "carepath-order-sign", order_sign("pat-benzo", draft, prefetch)))
    assert "opioid_benzodiazepine_coprescription" in found
    assert "naloxone_indicated" in found  # 4 × 5 mg × 1.5 = 30 MME: the benzodiazepine is the risk
    # The benzodiazepine order itself drafted, with no opioid: nothing opioid-related is raised.
    benzo_draft = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {**benzo, "status": "draft"}}],
    }
    assert "opioid_benzodiazepine_coprescription" not in codes(
        call(client, keys, "carepath-order-sign", order_sign("pat-benzo", benzo_draft, {}))
    )


def test_unknown_patient_and_other_organisation_get_no_cards(
    client: TestClient, settings: Settings, keys: Keys
) -> None:
    seed_patient(client, settings, "pat-a", first_line_history())
    body = order_sign("pat-a", fentanyl_draft())
    assert call(client, keys, "carepath-order-sign", body)["cards"]
    assert call(client, keys, "carepath-order-sign", order_sign("nobody", fentanyl_draft())) == {"cards": []}
    view = {
        "hook": "patient-view",
        "hookInstance": "h1",
        "context": {"patientId": "nobody", "userId": "Practitioner/1"},
    }
    assert call(client, keys, "carepath-patient-view", view) == {"cards": []}
    # org-b's registered client, and an org-b carepath token, see nothing of org-a's patient.
    url = f"{BASE}/carepath-order-sign"
    from tests.integration.cds.conftest import OTHER_ORG_ISSUER

    other = client.post(url, json=body, headers=bearer(client_jwt(keys, url, issuer=OTHER_ORG_ISSUER)))
    assert other.status_code == 200 and other.json() == {"cards": []}
    other = client.post(url, json=body, headers=carepath_auth(settings, "org-b"))
    assert other.status_code == 200 and other.json() == {"cards": []}
    mine_view = {**view, "context": {"patientId": "Patient/pat-a"}}
    view_url = f"{BASE}/carepath-patient-view"
    assert call(client, keys, "carepath-patient-view", mine_view)["cards"]
    other = client.post(view_url, json=mine_view, headers=bearer(client_jwt(keys, view_url, issuer=OTHER_ORG_ISSUER)))
    assert other.status_code == 200 and other.json() == {"cards": []}
    # A carepath token of org-a works as well as the client's JWT.
    mine = client.post(url, json=body, headers=carepath_auth(settings, "org-a"))
    assert mine.status_code == 200 and mine.json()["cards"]


def test_patient_matched_by_linked_fhir_patient(client: TestClient, settings: Settings, keys: Keys) -> None:
    """A patient first seen through FHIR ingestion is found by its FHIR Patient id and by its identifier."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {
                    "resourceType": "Patient",
                    "id": "fhir-77",
                    "identifier": [{"system": "urn:mrn", "value": "M77"}],
                },
                "request": {"method": "PUT", "url": "Patient/fhir-77"},
            },
            {
                "resource": {
                    "resourceType": "Procedure",
                    "status": "completed",
                    "subject": {"reference": "urn:uuid:p1"},
                    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "63047"}]},
                    "performedDateTime": first_line_history()[0]["occurred_at"],
                },
                "request": {"method": "POST", "url": "Procedure"},
            },
        ],
    }
    posted = client.post(
        "/fhir/r4", json=bundle, headers={**carepath_auth(settings), "Content-Type": "application/fhir+json"}
    )
    assert posted.status_code == 200, posted.text
    assert codes(call(client, keys, "carepath-order-sign", order_sign("fhir-77", fentanyl_draft())))
    by_identifier = order_sign(
        "other-id",
        fentanyl_draft(),
        {
            "patient": {
                "resourceType": "Patient",
                "id": "other-id",
                "identifier": [{"system": "urn:mrn", "value": "M77"}],
            }
        },
    )
    assert codes(call(client, keys, "carepath-order-sign", by_identifier))


def test_fhir_server_is_asked_when_prefetch_is_missing(
    client: TestClient, settings: Settings, keys: Keys, loopback: Loopback
) -> None:
    seed_patient(client, settings, "pat-remote", first_line_history())
    loopback.medications["pat-remote"] = [
        medication_request(*TEMAZEPAM, dose=1, unit="{tablet}", id_="remote-benzo"),
        medication_request(*TEMAZEPAM, dose=1, unit="{tablet}", id_="stopped-benzo", status="stopped"),
    ]
    server = {
        "fhirServer": f"{loopback.url}/fhir",
        "fhirAuthorization": {
            "access_token": loopback.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/MedicationRequest.read",
            "subject": "cds",
        },
    }
    found = codes(call(client, keys, "carepath-order-sign", order_sign("pat-remote", fentanyl_draft(), **server)))
    assert "opioid_benzodiazepine_coprescription" in found
    assert loopback.seen == [
        {"params": {"patient": "pat-remote", "status": "active"}, "auth": f"Bearer {loopback.token}"}
    ]
    # Prefetch present: no fetch. A server that refuses or is too slow: answered from what carepath knows.
    loopback.seen.clear()
    prefetch = {"medications": {"resourceType": "Bundle", "type": "searchset", "entry": []}}
    assert "opioid_benzodiazepine_coprescription" not in codes(
        call(client, keys, "carepath-order-sign", order_sign("pat-remote", fentanyl_draft(), prefetch, **server))
    )
    assert loopback.seen == []
    refused = copy.deepcopy(server)
    refused["fhirAuthorization"]["access_token"] = "wrong"
    found = codes(call(client, keys, "carepath-order-sign", order_sign("pat-remote", fentanyl_draft(), **refused)))
    assert "naloxone_indicated" in found and "opioid_benzodiazepine_coprescription" not in found
    loopback.delay = 3.0
    try:
        found = codes(call(client, keys, "carepath-order-sign", order_sign("pat-remote", fentanyl_draft(), **server)))
    finally:
        loopback.delay = 0.0
    assert "naloxone_indicated" in found and "opioid_benzodiazepine_coprescription" not in found


def test_bad_requests(client: TestClient, settings: Settings, keys: Keys) -> None:
    url = f"{BASE}/carepath-order-sign"
    wrong_hook = order_sign("x", fentanyl_draft())
    wrong_hook["hook"] = "patient-view"
    assert client.post(url, json=wrong_hook, headers=bearer(client_jwt(keys, url))).status_code == 422
    assert client.post(url, json={"hook": "order-sign"}, headers=bearer(client_jwt(keys, url))).status_code == 422
    missing = f"{BASE}/no-such-service"
    assert client.post(missing, json=wrong_hook, headers=bearer(client_jwt(keys, missing))).status_code == 404


def test_the_validator_refuses_what_the_specification_forbids() -> None:
    good: dict[str, Any] = {
        "uuid": "7b0c2f40-0e4a-4b8e-9d4f-2a1f6c3c9a11",
        "summary": "ok",
        "indicator": "info",
        "source": {"label": "x"},
    }
    assert card_problems(good) == []
    for broken in (
        {**good, "summary": "x" * 141},
        {**good, "indicator": "hard-stop"},
        {**good, "source": {}},
        {**good, "uuid": "nope"},
        {**good, "suggestions": [{"label": "s", "actions": [{"type": "create", "description": "d"}]}]},
        {**good, "overrideReasons": [{"display": "no code"}]},
        {**good, "source": {"label": "x", "url": "not a url"}},
    ):
        assert card_problems(broken), broken
    assert response_problems({"cards": [good, good]}) == ["cards: uuids are not unique"]


def test_the_order_sign_example_of_the_doc(client: TestClient, settings: Settings, keys: Keys) -> None:
    """docs/interop.md's order-sign.json answers the cards the doc lists; its feedback example is valid."""
    section = DOC.split("\n## CDS Hooks 2.0\n")[1].split("\n## ")[0]
    blocks = re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
    request = json.loads(blocks[0])
    seed_patient(client, settings, "pat-1", first_line_history())
    listed = re.search(r"answers cards for (.*?), for example", section, flags=re.DOTALL)
    assert listed is not None
    expected = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    assert set(codes(call(client, keys, "carepath-order-sign", request))) == expected
    (feedback,) = re.findall(r"-d '(\{.*?\})'\n```", section, flags=re.DOTALL)
    card = next(
        c
        for c in call(
            client,
            keys,
            "carepath-patient-view",
            {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "pat-1"}},
        )["cards"]
    )
    url = f"{BASE}/carepath-patient-view/feedback"
    body = json.loads(feedback.replace("<the reminder card uuid>", card["uuid"]))
    assert client.post(url, json=body, headers=bearer(client_jwt(keys, url))).status_code == 200


def test_order_select_judges_the_selected_orders(client: TestClient, settings: Settings, keys: Keys) -> None:
    """The unselected drafts belong to the picture; only what the selected ones newly raise is a card."""
    seed_patient(client, settings, "pat-select", first_line_history())
    patch = fentanyl_draft("patch-1")["entry"][0]["resource"]
    benzo = medication_request(*TEMAZEPAM, dose=1, unit="{tablet}", status="draft", id_="benzo-1")
    body = order_sign(
        "pat-select",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patch}, {"resource": benzo}]},
    )
    body["hook"] = "order-select"
    body["context"]["selections"] = ["MedicationRequest/benzo-1"]
    found = codes(call(client, keys, "carepath-order-select", body))
    assert "opioid_benzodiazepine_coprescription" in found
    assert "er_opioid_before_first_line_failed" not in found  # the patch is not the selected order
    body["context"]["selections"] = ["MedicationRequest/patch-1"]
    found = codes(call(client, keys, "carepath-order-select", body))
    assert {"er_opioid_before_first_line_failed", "opioid_benzodiazepine_coprescription"} <= set(found)
