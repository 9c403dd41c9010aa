"""Every HTTP answer is counted per route template (the 500 of an unhandled exception too) and an unhandled
exception is one log line without the exception's message; a request id is accepted or generated,
returned as X-Request-ID, put on request.state.request_id and carried into the events the request causes."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_intake_app, create_notifications_app
from shared.auth import create_token
from shared.db.tables import OutboxMessage
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from shared.web import install_common


def _count(metrics: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    found = re.search(rf"^carepath_http_requests_total\{{{re.escape(wanted)}\}} ([0-9.e+]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def failing_app(settings: Settings) -> TestClient:
    app = FastAPI()
    install_common(app, "probe")

    @app.get("/v1/things/{thing_id}")
    def fails(thing_id: str, request: Request) -> dict[str, str]:
        raise RuntimeError(f"a message quoting MRN-LEAK-{thing_id}")

    @app.get("/v1/echo")
    def echo(request: Request) -> dict[str, str]:
        return {"request_id": request.state.request_id}

    return TestClient(app, raise_server_exceptions=False)


def test_a_500_is_counted_once_under_its_route_template_and_logged_as_one_line(
    failing_app: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = _count(
        failing_app.get("/metrics").text, method="GET", route="/v1/things/{thing_id}", service="probe", status="500"
    )
    with caplog.at_level(logging.ERROR):
        response = failing_app.get("/v1/things/MRN-77")
    assert response.status_code == 500 and response.headers["X-Request-ID"]
    metrics = failing_app.get("/metrics").text
    after = _count(metrics, method="GET", route="/v1/things/{thing_id}", service="probe", status="500")
    assert after == before + 1
    assert "MRN-77" not in metrics
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    line = errors[0].getMessage()
    assert "\n" not in line and "RuntimeError" in line and "MRN" not in line
    assert errors[0].route == "/v1/things/{thing_id}"  # type: ignore[attr-defined]
    assert all("MRN" not in frame for frame in errors[0].frames)  # type: ignore[attr-defined]


def test_request_id_accepted_when_valid_else_generated(failing_app: TestClient) -> None:
    given = "0f8fad5b-d9cb-469f-a165-70867728950e"
    answered = failing_app.get("/v1/echo", headers={"X-Request-ID": given})
    assert answered.headers["X-Request-ID"] == given and answered.json() == {"request_id": given}
    refused = failing_app.get("/v1/echo", headers={"X-Request-ID": "MRN-12345 Jane Doe"})  # never logged
    generated = refused.headers["X-Request-ID"]
    assert generated != "MRN-12345 Jane Doe" and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert refused.json() == {"request_id": generated}


def test_request_id_travels_in_the_event_the_request_causes(settings: Settings) -> None:
    client = TestClient(create_intake_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    patient_id = client.post("/v1/patients", json={"external_id": "MRN-RID"}, headers=headers).json()["id"]
    request_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    posted = client.post(
        f"/v1/patients/{patient_id}/updates",
        json={"type": "surgery", "occurred_at": "2026-09-01T08:00:00+02:00", "data": {"procedure": "laminectomy"}},
        headers={**headers, "X-Request-ID": request_id},
    )
    assert posted.status_code == 202 and posted.headers["X-Request-ID"] == request_id
    with UnitOfWork(settings, read_only=True) as uow:
        envelopes = uow.session.execute(select(OutboxMessage.envelope)).scalars().all()
    assert [envelope.get("carepathrequestid") for envelope in envelopes] == [request_id]


def test_database_gauges_on_notifications_only(settings: Settings) -> None:
    intake = TestClient(create_intake_app()).get("/metrics").text
    notifications = TestClient(create_notifications_app()).get("/metrics").text
    for gauge in ("carepath_outbox_unfinished", "carepath_broker_queue_depth", "carepath_parked_events"):
        assert gauge not in intake
        assert gauge in notifications
    assert 'carepath_broker_queue_depth{queue="pathway"}' in notifications


def test_readyz_reports_configuration(settings: Settings) -> None:
    body = TestClient(create_notifications_app()).get("/readyz").json()
    assert body == {"status": "ok", "database": "ok", "broker": "ok", "configuration": "ok"}
