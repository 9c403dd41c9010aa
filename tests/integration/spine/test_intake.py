"""Intake over HTTP against the real database: validation, idempotency, organisation scoping."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carepath.apps import create_intake_app as create_app
from carepath.apps import create_notifications_app
from shared.auth import create_token
from shared.db.tables import IdempotencyRecord, OutboxMessage, PatientUpdate
from shared.db.tables.reminders import STATUSES
from shared.db.uow import UnitOfWork
from shared.messaging.routing import CONSUMERS
from shared.settings import Settings

pytestmark = pytest.mark.integration

SURGERY = {"type": "surgery", "occurred_at": "2026-10-01T10:00:00+02:00", "data": {"procedure": "laminectomy"}}


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app())


def auth(settings: Settings, org: str = "org-a", role: str = "client") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, role)}"}


def new_patient(client: TestClient, headers: dict[str, str], mrn: str = "MRN-1") -> str:
    response = client.post("/v1/patients", json={"external_id": mrn}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def count(settings: Settings, table: Any) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        return uow.session.execute(select(func.count()).select_from(table)).scalar_one()


def test_patient_created_once_per_organisation(client: TestClient, settings: Settings) -> None:
    headers = auth(settings)
    first = new_patient(client, headers)
    again = client.post("/v1/patients", json={"external_id": "MRN-1"}, headers=headers)
    assert again.status_code == 409 and again.json()["id"] == first
    other_org = client.post("/v1/patients", json={"external_id": "MRN-1"}, headers=auth(settings, "org-b"))
    assert other_org.status_code == 201 and other_org.json()["id"] != first


BAD_INPUTS = {
    "naive timestamp": {**SURGERY, "occurred_at": "2026-10-01T10:00:00"},
    "out-of-range number": {
        "type": "pain_assessment",
        "occurred_at": "2026-10-01T10:00:00Z",
        "data": {"pain_nrs": 11, "distribution": "axial"},
    },
    "unknown enum": {**SURGERY, "data": {"procedure": "laminoplasty"}},
    "unknown type": {"type": "massage", "occurred_at": "2026-10-01T10:00:00Z", "data": {}},
    "extra field": {**SURGERY, "data": {"procedure": "laminectomy", "surgeon": "x"}},
    "extra top-level field": {**SURGERY, "note": "x"},
    "missing field": {"type": "neuro_exam", "occurred_at": "2026-10-01T10:00:00Z", "data": {}},
    "number as string": {
        "type": "pain_assessment",
        "occurred_at": "2026-10-01T10:00:00Z",
        "data": {"pain_nrs": "7", "distribution": "axial"},
    },
    "epoch timestamp": {**SURGERY, "occurred_at": 1790000000},
}


@pytest.mark.parametrize("body", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_update_is_422_with_field_errors_and_stores_nothing(
    client: TestClient, settings: Settings, body: dict
) -> None:
    headers = auth(settings)
    patient_id = new_patient(client, headers)
    response = client.post(f"/v1/patients/{patient_id}/updates", json=body, headers={**headers, "Idempotency-Key": "k"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"], "a field-level message"
    assert count(settings, PatientUpdate) == 0
    assert count(settings, OutboxMessage) == 0
    assert count(settings, IdempotencyRecord) == 0


def test_malformed_json_is_422_and_stores_nothing(client: TestClient, settings: Settings) -> None:
    headers = {**auth(settings), "Content-Type": "application/json"}
    patient_id = new_patient(client, headers)
    response = client.post(f"/v1/patients/{patient_id}/updates", content=b'{"type": "surgery",', headers=headers)
    assert response.status_code == 422
    assert count(settings, PatientUpdate) == 0 and count(settings, OutboxMessage) == 0


def test_batch_is_all_or_nothing(client: TestClient, settings: Settings) -> None:
    headers = auth(settings)
    patient_id = new_patient(client, headers)
    bad = client.post(
        f"/v1/patients/{patient_id}/updates:batch",
        json={"updates": [SURGERY, BAD_INPUTS["unknown enum"]]},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", "updates", 1]
    assert count(settings, PatientUpdate) == 0
    good = client.post(
        f"/v1/patients/{patient_id}/updates:batch", json={"updates": [SURGERY, SURGERY]}, headers=headers
    )
    assert good.status_code == 202
    assert len(good.json()["updates"]) == 2
    assert count(settings, PatientUpdate) == 2
    assert count(settings, OutboxMessage) == 1  # one event, one evaluation of both updates


def test_idempotency_key_replays_and_rejects_other_bodies(client: TestClient, settings: Settings) -> None:
    headers = auth(settings)
    patient_id = new_patient(client, headers)
    url = f"/v1/patients/{patient_id}/updates"
    first = client.post(url, json=SURGERY, headers={**headers, "Idempotency-Key": "key-1"})
    again = client.post(url, json=SURGERY, headers={**headers, "Idempotency-Key": "key-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other = client.post(
        url, json={**SURGERY, "data": {"procedure": "fusion"}}, headers={**headers, "Idempotency-Key": "key-1"}
    )
    assert other.status_code == 422
    assert count(settings, PatientUpdate) == 1 and count(settings, OutboxMessage) == 1


def test_idempotency_key_in_flight_is_409(client: TestClient, settings: Settings) -> None:
    from pydantic import TypeAdapter

    from services.intake import idempotency
    from services.intake.schemas import UpdateIn

    headers = auth(settings)
    patient_id = new_patient(client, headers)
    url = f"/v1/patients/{patient_id}/updates"
    validated = TypeAdapter(UpdateIn).validate_python(SURGERY).model_dump(mode="json")
    digest = idempotency.request_hash("POST", url, validated)
    assert idempotency.claim(settings, "org-a", "busy-key", digest) is None  # a first request holds the key
    response = client.post(url, json=SURGERY, headers={**headers, "Idempotency-Key": "busy-key"})
    assert response.status_code == 409
    assert count(settings, PatientUpdate) == 0


def test_other_organisation_gets_404_never_data(client: TestClient, settings: Settings) -> None:
    patient_id = new_patient(client, auth(settings, "org-a"))
    intruder = auth(settings, "org-b")
    assert client.get(f"/v1/patients/{patient_id}/pathway", headers=intruder).status_code == 404
    assert client.get(f"/v1/patients/{patient_id}/pathway/history", headers=intruder).status_code == 404
    assert client.post(f"/v1/patients/{patient_id}/updates", json=SURGERY, headers=intruder).status_code == 404
    assert (
        client.post(
            f"/v1/patients/{patient_id}/updates:batch", json={"updates": [SURGERY]}, headers=intruder
        ).status_code
        == 404
    )
    assert count(settings, PatientUpdate) == 0
    assert client.get(f"/v1/patients/{patient_id}/pathway", headers=auth(settings, "org-a")).status_code == 200


def test_every_route_but_health_needs_a_token(client: TestClient, settings: Settings) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/patients", json={"external_id": "x"}).status_code == 401
    assert (
        client.post(
            "/v1/patients", json={"external_id": "x"}, headers={"Authorization": "Bearer not-a-token"}
        ).status_code
        == 401
    )
    assert client.post("/v1/pathway:evaluate", json={"updates": []}).status_code == 401


def test_readyz_and_metrics(client: TestClient, settings: Settings) -> None:
    assert client.get("/readyz").json()["database"] == "ok"
    new_patient(client, auth(settings), "MRN-SECRET-42")
    metrics = client.get("/metrics").text
    assert "carepath_http_requests_total" in metrics
    assert "MRN-SECRET-42" not in metrics
    headers = auth(settings)
    patient_id = client.post("/v1/patients", json={"external_id": "MRN-2"}, headers=headers).json()["id"]
    client.post(f"/v1/patients/{patient_id}/updates", json=SURGERY, headers=headers)
    # The database-derived gauges are on the notifications service only (one place for the stack).
    assert "carepath_outbox_unfinished" not in client.get("/metrics").text
    notifications = TestClient(create_notifications_app())
    assert 'carepath_outbox_unfinished{consumer="pathway"} 1.0' in notifications.get("/metrics").text


def test_history_rejects_a_forged_cursor(client: TestClient, settings: Settings) -> None:
    headers = auth(settings)
    patient_id = new_patient(client, headers)
    response = client.get(f"/v1/patients/{patient_id}/pathway/history", params={"cursor": "not-ours"}, headers=headers)
    assert response.status_code == 422
    assert client.get(f"/v1/patients/{patient_id}/pathway/history", headers=headers).json()["items"] == []


def test_api_ignores_the_worklist_login_cookie(client: TestClient, settings: Settings) -> None:
    """A browser's worklist session must never authorise an API call (cross-site request forgery)."""
    client.cookies.set("carepath_token", create_token(settings, "org-a", "client"))
    assert client.post("/v1/patients", json={"external_id": "MRN-CSRF"}).status_code == 401


def test_database_down_is_503_with_retry_after(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.messaging.celery_app import get_celery
    from shared.settings import get_settings

    monkeypatch.setenv("CAREPATH_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    get_celery.cache_clear()
    client = TestClient(create_app())
    headers = auth(get_settings())
    response = client.post("/v1/patients", json={"external_id": "MRN-1"}, headers=headers)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/readyz").json()["database"] == "down"
    assert client.get("/healthz").status_code == 200


def test_backlog_gauges_exist_at_zero_when_there_is_nothing_to_count(settings: Settings) -> None:
    metrics = TestClient(create_notifications_app()).get("/metrics").text
    for consumer in CONSUMERS:
        assert f'carepath_outbox_unfinished{{consumer="{consumer}"}} 0.0' in metrics
        assert f'carepath_outbox_oldest_unfinished_seconds{{consumer="{consumer}"}} 0.0' in metrics
    for status in STATUSES:
        assert f'carepath_reminders{{status="{status}"}} 0.0' in metrics
    assert "carepath_reminders_scheduled_past_due 0.0" in metrics
