"""Hand-made bad requests against both APIs: malformed JSON, bytes that are not UTF-8, the wrong content
type, huge bodies, NUL characters, ids that are not UUIDs, parameters and instants out of range. Each is a
clear 4xx (JSON with a message, a status the OpenAPI document declares for the route), never a 500, and
stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import SQLModel

from carepath.apps import create_intake_app as intake_app
from carepath.apps import create_notifications_app as notifications_app
from shared.auth import create_token
from shared.clock import isoformat, utcnow
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork
from shared.settings import Settings

pytestmark = pytest.mark.integration

WHEN = "2026-03-01T09:30:00+01:00"
SURGERY = {"type": "surgery", "occurred_at": WHEN, "data": {"procedure": "laminectomy"}}
JSON = {"Content-Type": "application/json"}
HUGE = 5 * 1024 * 1024


def _with(update: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**update, **changes}


# (service, method, path template, request kwargs, expected status); {patient} and {reminder} are real rows.
CASES: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("intake", "POST", "/v1/patients", {"content": b'{"external_id": ', "headers": JSON}, 422),
    ("intake", "POST", "/v1/patients", {"content": b"\xff\xfe\x00\x01", "headers": JSON}, 422),
    (
        "intake",
        "POST",
        "/v1/patients",
        {"content": b'{"external_id": "MRN-9"}', "headers": {"Content-Type": "text/plain"}},
        422,
    ),
    ("intake", "POST", "/v1/patients", {"content": b"[]", "headers": JSON}, 422),
    ("intake", "POST", "/v1/patients", {"content": b"", "headers": JSON}, 422),
    ("intake", "POST", "/v1/patients", {"json": {"external_id": "MRN\x009"}}, 422),
    ("intake", "POST", "/v1/patients", {"content": b'{"external_id": "' + b"x" * HUGE + b'"}', "headers": JSON}, 413),
    ("intake", "POST", "/v1/patients/{patient}/updates", {"content": b"{", "headers": JSON}, 422),
    ("intake", "POST", "/v1/patients/{patient}/updates", {"content": b"\x80abc", "headers": JSON}, 422),
    (
        "intake",
        "POST",
        "/v1/patients/{patient}/updates",
        {"json": _with(SURGERY, occurred_at="9999-12-31T23:59:59-23:59")},
        422,
    ),
    (
        "intake",
        "POST",
        "/v1/patients/{patient}/updates",
        {"json": _with(SURGERY, occurred_at="0001-01-01T00:00:00+14:00")},
        422,
    ),
    (
        "intake",
        "POST",
        "/v1/patients/{patient}/updates",
        {
            "json": {
                "type": "imaging",
                "occurred_at": WHEN,
                "data": {"modality": "mri", "findings": [], "indication": "new\x00weakness"},
            }
        },
        422,
    ),
    ("intake", "POST", "/v1/patients/{patient}/updates", {"json": SURGERY, "headers": {"Idempotency-Key": ""}}, 422),
    ("intake", "POST", "/v1/patients/not-a-uuid/updates", {"json": SURGERY}, 404),
    ("intake", "POST", "/v1/patients/" + "x" * 3000 + "/updates", {"json": SURGERY}, 404),
    ("intake", "POST", "/v1/patients/{patient}/updates:batch", {"json": {"updates": [SURGERY] * 501}}, 422),
    (
        "intake",
        "POST",
        "/v1/patients/{patient}/updates:batch",
        {"json": {"updates": [SURGERY, _with(SURGERY, occurred_at="1899-12-31T23:59:59Z")]}},
        422,
    ),
    ("intake", "GET", "/v1/patients/not-a-uuid/pathway", {}, 404),
    ("intake", "GET", "/v1/patients/{patient}/pathway/history?limit=0", {}, 422),
    ("intake", "GET", "/v1/patients/{patient}/pathway/history?limit=99999999999999999999999", {}, 422),
    ("intake", "GET", "/v1/patients/{patient}/pathway/history?limit=ten", {}, 422),
    ("intake", "GET", "/v1/patients/{patient}/pathway/history?cursor=%00", {}, 422),
    ("intake", "GET", "/v1/patients/{patient}/pathway/history?cursor=bm90LWEtY3Vyc29y", {}, 422),
    (
        "intake",
        "POST",
        "/v1/pathway:evaluate",
        {"json": {"updates": [SURGERY], "now": "9999-12-31T23:59:59-12:00"}},
        422,
    ),
    ("intake", "POST", "/v1/pathway:evaluate", {"content": b"[" * 100_000, "headers": JSON}, 422),
    (
        "intake",
        "POST",
        "/v1/pathway:evaluate",
        {"content": b"[" * 100_000, "headers": {"Content-Type": "text/json"}},
        422,
    ),
    (
        "intake",
        "POST",
        "/v1/patients",
        {"content": b'{"external_id": "a\\u0000"}', "headers": {"Content-Type": "application/x-json"}},
        422,
    ),
    ("intake", "PUT", "/v1/organisation/pathway-config", {"content": b"\xc3\x28", "headers": JSON}, 422),
    ("intake", "PUT", "/v1/organisation/pathway-config", {"json": {"profile": "a\x00"}}, 422),
    ("intake", "PUT", "/v1/organisation/pathway-config", {"json": {"overrides": {"pt_follow_up_days": 10**9}}}, 422),
    ("intake", "PUT", "/v1/organisation/pathway-config", {"json": {"overrides": {"tolerance_days": 1e300}}}, 422),
    ("notifications", "GET", "/v1/reminders?limit=0", {}, 422),
    ("notifications", "GET", "/v1/reminders?limit=201", {}, 422),
    ("notifications", "GET", "/v1/reminders?due_before=yesterday", {}, 422),
    ("notifications", "GET", "/v1/reminders?due_before=9999-12-31T23:59:59-23:59", {}, 422),
    ("notifications", "GET", "/v1/reminders?due_before=2026-01-01T00:00:00", {}, 422),
    ("notifications", "GET", "/v1/reminders?patient_id=%00", {}, 422),
    ("notifications", "GET", "/v1/reminders?status=bogus", {}, 422),
    ("notifications", "GET", "/v1/reminders?cursor=!!!", {}, 422),
    ("notifications", "GET", "/v1/reminders/not-a-uuid", {}, 404),
    ("notifications", "GET", "/v1/reminders/" + "x" * 37, {}, 422),
    ("notifications", "GET", "/v1/reminders/ab%00cd", {}, 422),
    ("notifications", "POST", "/v1/reminders/{reminder}/snooze", {"content": b"{", "headers": JSON}, 422),
    ("notifications", "POST", "/v1/reminders/{reminder}/snooze", {"content": b"\xff", "headers": JSON}, 422),
    ("notifications", "POST", "/v1/reminders/{reminder}/snooze", {"json": {"until": "9999-12-31T23:59:59-23:59"}}, 422),
    (
        "notifications",
        "POST",
        "/v1/reminders/{reminder}/snooze",
        {"json": {"until": "in-the-future", "reason": "x"}},
        422,
    ),
    (
        "notifications",
        "POST",
        "/v1/reminders/{reminder}/dismiss",
        {"json": {"reason": "already_done", "comment": "seen\x00"}},
        422,
    ),
    (
        "notifications",
        "POST",
        "/v1/reminders/{reminder}/dismiss",
        {"content": b'{"reason": "other"}', "headers": {"Content-Type": "application/xml"}},
        422,
    ),
    ("notifications", "POST", "/v1/webhook-endpoints", {"json": {"url": "https://127.0.0.1/\x00"}}, 422),
    ("notifications", "POST", "/v1/webhook-endpoints", {"json": {"url": "https://[::1"}}, 422),
    ("notifications", "GET", "/v1/webhook-endpoints/not-a-uuid", {}, 404),
    ("notifications", "GET", "/v1/webhook-endpoints/not-a-uuid/deliveries?limit=0", {}, 422),
    ("notifications", "POST", "/v1/email-recipients", {"content": b"\xfe", "headers": JSON}, 422),
    (
        "notifications",
        "POST",
        "/login",
        {"content": b"\xff\xfe", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        422,
    ),
]


@pytest.fixture
def rows(settings: Settings) -> dict[str, str]:
    now = utcnow()
    with UnitOfWork(settings) as uow:
        patient = Patient(org="org-a", external_id="MRN-1", created_at=now)
        uow.session.add(patient)
        uow.session.flush()
        reminder = Reminder(
            org="org-a",
            patient_id=patient.id,
            kind="pt_follow_up",
            due_at=now - timedelta(hours=1),
            status="due",
            text="PT follow-up due",
            citation="G1",
            fact_ids=[],
            created_at=now,
            updated_at=now,
        )
        uow.session.add(reminder)
        uow.commit()
        return {"patient": patient.id, "reminder": reminder.id}


@pytest.fixture
def clients(settings: Settings) -> Iterator[dict[str, TestClient]]:
    with (
        TestClient(intake_app(), raise_server_exceptions=False) as intake,
        TestClient(notifications_app(), raise_server_exceptions=False) as notifications,
    ):
        yield {"intake": intake, "notifications": notifications}


def _counts(settings: Settings) -> dict[str, int]:
    with UnitOfWork(settings, read_only=True) as uow:
        return {
            name: uow.session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in SQLModel.metadata.tables.items()
            if name != "audit_event"  # the audit trail records refused requests too
        }


def _documented(client: TestClient, method: str, path: str) -> set[str]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    bare = path.split("?")[0]
    for template, methods in paths.items():
        parts, given = template.strip("/").split("/"), bare.strip("/").split("/")
        same = len(parts) == len(given) and all(p.startswith("{") or p == g for p, g in zip(parts, given, strict=True))
        if same and method.lower() in methods:
            return set(methods[method.lower()]["responses"])
    raise AssertionError(f"no route for {method} {path}")


def test_bad_requests_are_clear_4xx_and_store_nothing(
    settings: Settings, rows: dict[str, str], clients: dict[str, TestClient]
) -> None:
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'ops')}"}
    before = _counts(settings)
    problems = []
    for service, method, template, kwargs, expected in CASES:
        path = template.format(**rows)
        client = clients[service]
        request = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        response = client.request(method, path, **request)
        label = f"{method} {path[:70]} {str(kwargs)[:60]}"
        if response.status_code != expected:
            problems.append(f"{label}: {response.status_code} (expected {expected}) {response.text[:200]}")
            continue
        if str(expected) not in _documented(client, method, path):
            problems.append(f"{label}: {expected} is not in the OpenAPI document")
        if expected != 413:  # Starlette's own plain-text answer
            detail = response.json().get("detail")
            if not detail:
                problems.append(f"{label}: no message in {response.text[:200]}")
    assert not problems, "\n".join(problems)
    assert _counts(settings) == before


def test_what_if_and_snooze_still_accept_the_edges_of_the_range(
    settings: Settings, rows: dict[str, str], clients: dict[str, TestClient]
) -> None:
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'coordinator')}"}
    early = _with(SURGERY, occurred_at="1900-01-01T00:00:00Z")
    what_if = clients["intake"].post(
        "/v1/pathway:evaluate", json={"updates": [early], "now": "2199-12-31T23:59:59Z"}, headers=headers
    )
    assert what_if.status_code == 200, what_if.text
    until = isoformat(utcnow() + timedelta(days=365))
    snoozed = clients["notifications"].post(
        f"/v1/reminders/{rows['reminder']}/snooze", json={"until": until}, headers=headers
    )
    assert snoozed.status_code == 200, snoozed.text
