"""Crafted inputs are 422 (never 500) and their values never reach the logs: a lone UTF-16 surrogate in
any string field of any JSON body (enumerated from both OpenAPI documents), crafted cursors on every
paginated route, instants at the calendar's ends, numbers that overflow, undecodable path and form bytes."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from shared.db.tables import Patient, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.security.conftest import client_for
from tests.integration.security.test_route_authentication import concrete, operations

pytestmark = pytest.mark.integration
MARKER = "MRN-SECRET-MARKER-7731"
SURROGATE = "\ud800"


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at any level, checked by the test for the marker and for errors."""
    caplog.set_level(logging.DEBUG)
    yield caplog


# The test's own HTTP client logs each URL it requests; what matters is what the services log.
CLIENT_SIDE = ("httpx", "httpcore", "asyncio")


def assert_not_logged(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE)]
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in records)
    for value in (MARKER, *values):
        assert value not in text
    assert not [r for r in records if r.levelno >= logging.ERROR], "an error was logged"


def _json(value: Any) -> bytes:
    """JSON as a client would send it: a lone surrogate is the escape \\ud800 (json.dumps keeps it so)."""
    return json.dumps(value).encode()


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema or "oneOf" in schema or "anyOf" in schema:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = document["components"]["schemas"][name]
        else:
            schema = (schema.get("oneOf") or schema["anyOf"])[0]
    return schema


def json_body_operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    document = app.openapi()
    for method, path, operation in operations(app):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            yield method, path, operation, _schema(document, content["application/json"]["schema"])


def test_a_lone_surrogate_in_any_field_of_any_json_body_is_422_and_not_logged(
    apps: dict[str, FastAPI], bearer: Any, seeded: dict[str, str], quiet_logs: pytest.LogCaptureFixture
) -> None:
    checked = 0
    for app in apps.values():
        client = client_for(app)
        for method, path, operation, schema in json_body_operations(app):
            url = concrete(path, operation)
            for name in ("patient_id", "reminder_id"):
                url = url.replace(path.split("{" + name + "}")[0], path.split("{" + name + "}")[0])
            url = (
                path.format(**seeded, endpoint_id=seeded["reminder_id"], service_id="carepath-order-sign")
                if "{" in path
                else url
            )
            bodies = [{name: f"{MARKER}{SURROGATE}"} for name in schema.get("properties", {})]
            bodies.append({f"{MARKER}{SURROGATE}": "key"})
            bodies.append({"nested": [{"deeper": {"text": f"{MARKER}{SURROGATE}"}}]})
            for body in bodies:
                response = client.request(
                    method, url, content=_json(body), headers={**bearer("ops"), "Content-Type": "application/json"}
                )
                assert response.status_code == 422, (method, path, body.keys(), response.status_code)
                assert response.json()["detail"][0]["type"] == "string_unstorable", (method, path)
                assert MARKER not in response.text
            checked += 1
    assert checked >= 9
    assert_not_logged(quiet_logs)


def _counts(settings: Settings) -> tuple[int, int]:
    with UnitOfWork(settings, read_only=True) as uow:
        patients = uow.session.execute(select(func.count()).select_from(Patient)).scalar_one()
        updates = uow.session.execute(select(func.count()).select_from(PatientUpdate)).scalar_one()
        return patients, updates


def test_otherwise_valid_bodies_with_a_surrogate_store_nothing(
    intake_app: FastAPI,
    notifications_app: FastAPI,
    bearer: Any,
    seeded: dict[str, str],
    settings: Settings,
    quiet_logs: pytest.LogCaptureFixture,
) -> None:
    patient, reminder = seeded["patient_id"], seeded["reminder_id"]
    text = f"{MARKER} radicular pain{SURROGATE} since Monday"
    update = {"type": "pain_assessment", "occurred_at": "2026-09-20T10:00:00+02:00", "data": {"pain_nrs": 7}}
    cases = [
        (intake_app, "POST", "/v1/patients", {"external_id": text}),
        (
            intake_app,
            "POST",
            f"/v1/patients/{patient}/updates",
            {**update, "data": {"pain_nrs": 7, "distribution": text}},
        ),
        (intake_app, "POST", f"/v1/patients/{patient}/updates:batch", {"updates": [update, {**update, "type": text}]}),
        (intake_app, "POST", "/v1/pathway:evaluate", {"updates": [{**update, "occurred_at": text}]}),
        (
            notifications_app,
            "POST",
            f"/v1/reminders/{reminder}/snooze",
            {"until": "2030-01-01T00:00:00Z", "reason": text},
        ),
        (notifications_app, "POST", f"/v1/reminders/{reminder}/dismiss", {"reason": "other", "comment": text}),
        (notifications_app, "POST", "/v1/webhook-endpoints", {"url": "https://example.org/h", "description": text}),
        (notifications_app, "POST", "/v1/email-recipients", {"address": f"a{SURROGATE}@example.org"}),
    ]
    before = _counts(settings)
    for app, method, url, body in cases:
        client = client_for(app)
        headers = {**bearer("ops"), "Content-Type": "application/json"}
        response = client.request(method, url, content=_json(body), headers=headers)
        assert response.status_code == 422, (url, response.status_code)
        assert MARKER not in response.text
    assert _counts(settings) == before
    reminder_now = client_for(notifications_app).get(f"/v1/reminders/{reminder}", headers=bearer("ops")).json()
    assert reminder_now["status"] == "due" and reminder_now["dismiss_comment"] is None
    assert client_for(notifications_app).get("/v1/webhook-endpoints", headers=bearer("ops")).json() in (
        [],
        {"items": []},
    )
    assert_not_logged(quiet_logs)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CRAFTED_CURSORS = [
    "%C2%B2",  # superscript two: str.isdigit() is true, int() fails
    "²",
    "-1",
    "1" * 30,
    "9" * 19,
    "%00",
    "%ED%A0%80",  # a lone surrogate's UTF-8-like bytes
    "%FF%FE",
    _b64(["9999-12-31T23:59:59-05:00", "x"]),  # converting to UTC overflows
    _b64(["0001-01-01T00:00:00+05:00", "x"]),
    _b64(["9999-12-31T23:59:59+00:00", "x"]),
    _b64(["2026-01-01T00:00:00", "x"]),  # naive
    _b64(["2026-01-01T00:00:00Z", "x" * 37]),
    _b64(["2026-01-01T00:00:00Z", 5]),
    _b64([1e30, "x"]),
    _b64({"due": "2026-01-01T00:00:00Z"}),
    _b64([[[[[[[[[[]]]]]]]]]]),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
]


def test_crafted_cursors_on_every_paginated_route_are_422(
    apps: dict[str, FastAPI], bearer: Any, seeded: dict[str, str], quiet_logs: pytest.LogCaptureFixture
) -> None:
    paginated = [
        (app, path)
        for app in apps.values()
        for method, path, operation in operations(app)
        if method == "GET" and any(p["name"] == "cursor" for p in operation.get("parameters", []))
    ]
    assert {path for _, path in paginated} >= {"/v1/reminders", "/v1/patients/{patient_id}/pathway/history"}
    for app, path in paginated:
        client = client_for(app)
        url = path.format(**seeded)
        for cursor in CRAFTED_CURSORS:
            response = client.get(f"{url}?cursor={cursor}", headers=bearer("ops"))
            assert response.status_code == 422, (path, cursor, response.status_code)
        assert client.get(url, headers=bearer("ops")).status_code == 200  # no cursor: the first page
    assert_not_logged(quiet_logs, *[c for c in CRAFTED_CURSORS if len(c) > 6])


@pytest.mark.parametrize(
    "app_name, method, url, body",
    [
        ("notifications", "GET", "/v1/reminders?due_before=9999-12-31T23:59:59-05:00", None),
        ("notifications", "GET", "/v1/reminders?due_before=0001-01-01T00:00:00%2B05:00", None),
        ("notifications", "GET", "/v1/reminders?limit=" + "9" * 30, None),
        ("notifications", "POST", "/v1/reminders/{reminder_id}/snooze", {"until": "9999-12-31T23:59:59-05:00"}),
        (
            "intake",
            "POST",
            "/v1/patients/{patient_id}/updates",
            {"type": "neuro_exam", "occurred_at": "9999-12-31T23:59:59-05:00", "data": {"progressive_deficit": True}},
        ),
        ("intake", "POST", "/v1/pathway:evaluate", {"updates": [], "now": "9999-12-31T23:59:59-05:00"}),
        ("intake", "GET", "/v1/patients/{patient_id}/pathway/history?limit=" + "1" * 30, None),
        ("intake", "POST", "/v1/patients", {"external_id": "x" * 10_000}),
        ("intake", "POST", "/v1/patients", {"external_id": float("inf")}),  # Infinity: not JSON
        ("intake", "POST", "/v1/patients", {"external_id": float("nan")}),
        (
            "intake",
            "POST",
            "/v1/patients/{patient_id}/updates",
            {
                "type": "medication",
                "occurred_at": "2026-09-22T09:00:00+02:00",
                "data": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": float("nan")},
            },
        ),
        ("intake", "POST", "/v1/patients", {"external_id": 10**400}),
        ("notifications", "GET", "/v1/reminders/%00", None),
        ("notifications", "GET", "/v1/reminders/" + "a" * 37, None),
    ],
)
def test_other_crafted_values_are_422(
    apps: dict[str, FastAPI],
    bearer: Any,
    seeded: dict[str, str],
    quiet_logs: pytest.LogCaptureFixture,
    app_name: str,
    method: str,
    url: str,
    body: Any,
) -> None:
    client = client_for(apps[app_name])
    headers = {**bearer("ops"), "Content-Type": "application/json"}
    content = None if body is None else json.dumps(body).encode()
    response = client.request(method, url.format(**seeded), content=content, headers=headers)
    assert response.status_code == 422, response.status_code
    assert_not_logged(quiet_logs)


def test_undecodable_bytes_in_paths_and_forms_are_never_500(
    notifications_app: FastAPI, bearer: Any, quiet_logs: pytest.LogCaptureFixture
) -> None:
    client = client_for(notifications_app)
    for url in ("/v1/reminders/%ED%A0%80", "/v1/reminders/%FF", "/v1/reminders?kind=%ED%A0%80"):
        assert client.get(url, headers=bearer("ops")).status_code in (404, 422), url
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for content in (
        b"token=%ED%A0%80&csrf_token=x",
        b"token=\xff\xfe&csrf_token=%00",
        f"token={MARKER}%ED%A0%80".encode(),
    ):
        response = client.post("/login", content=content, headers=form)
        assert response.status_code in (403, 422), response.status_code
    assert_not_logged(quiet_logs)


def test_an_unexpected_error_is_logged_without_its_message(
    settings: Settings, quiet_logs: pytest.LogCaptureFixture
) -> None:
    """The last line of defence: whatever a bug raises, its message (which may quote the input) stays out
    of the log, and Starlette does not log the exception a second time."""
    from fastapi import Body

    from shared.web import install_common

    app = FastAPI()
    install_common(app, "test")

    @app.post("/boom")
    def boom(text: str = Body(embed=True)) -> None:
        raise ValueError(f"could not handle {text!r}")

    response = client_for(app).post("/boom", json={"text": MARKER})
    assert response.status_code == 500 and MARKER not in response.text
    service_records = [r for r in quiet_logs.records if not r.name.startswith(CLIENT_SIDE)]
    errors = [r for r in service_records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ValueError" in errors[0].getMessage() and "/boom" in errors[0].getMessage()
    assert MARKER not in "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in service_records)
