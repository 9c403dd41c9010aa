"""The audit trail end to end: a mixed workload (API writes and reads, refusals, the worklist, the calendar
feed, a FHIR Bundle, a configuration change, the worklist's OpenID Connect sign-in through a real provider on
loopback, its logout and a stale session cookie) is replayed through both real HTTP apps, and what it did is
diffed against `carepath audit export`: every read and write of patient data has exactly its row, with
the right actor, organisation, action, patient and outcome, and nothing posted (MRNs, clinical values,
free text) is in the export."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.cli import main
from shared.auth import FEED, create_token
from shared.db.tables import FhirPatientLink
from shared.db.uow import UnitOfWork
from shared.sessions import COOKIE as SESSION_COOKIE
from shared.settings import Settings
from tests.integration.audit.conftest import seed_reminder
from tests.integration.fhir.fhir_support import FHIR_JSON, load
from tests.support.provider_process import Provider, oidc_provider

pytestmark = pytest.mark.integration

ORG = "org-audit"
OTHER = "org-audit-other"
MRN = "MRN-AUDIT-SECRET-4711"
SNOOZE_REASON = "patient mentioned XYZZY-CLINICAL-NOTE at the call"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
Row = tuple[str, str, str | None, str]  # actor, action, patient_id, outcome
CLIENT, COORD, OPS = "client:integ-1", "coordinator:coord-1", "ops:ops-1"


def _bearer(settings: Settings, role: str, subject: str, org: str = ORG) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, role, subject)}"}


def _update(kind: str = "pain_assessment", at: str = "2026-09-20T10:00:00+02:00") -> dict[str, Any]:
    return {"type": kind, "occurred_at": at, "data": {"pain_nrs": 8, "distribution": "radicular"}}


def _export(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["audit", "export", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _rows(events: list[dict[str, Any]]) -> Counter[Row]:
    return Counter((e["actor"], e["action"], e["patient_id"], e["outcome"]) for e in events)


def _sign_in(client: TestClient, token: str) -> str:
    """The worklist sign-in (the pasted token); returns a CSRF token for later forms."""
    page = client.get("/login")
    match = CSRF.search(page.text)
    assert match, page.text
    response = client.post("/login", data={"token": token, "csrf_token": match.group(1)})
    assert response.status_code in (303, 401), response.text
    return match.group(1)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider("http://testserver/login/callback", tmp_path_factory.mktemp("oidc")) as running:
        yield running


def _oidc_sign_in(client: TestClient, provider: Provider, sub: str, groups: list[str]) -> int:
    """The worklist sign-in through the organisation's provider; returns the callback's status."""
    provider.control(user={"sub": sub, "groups": groups}, tamper={})
    started = client.get("/login/start", params={"org": ORG})
    assert started.status_code == 303, started.text
    answer = httpx.get(started.headers["location"], follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return client.get(answer.headers["location"].removeprefix("http://testserver")).status_code


def test_a_mixed_workload_is_exactly_what_the_export_says(
    settings: Settings,
    intake: TestClient,
    notifications: TestClient,
    provider: Provider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.notifications.web import oidc

    oidc.clear_caches()
    argv = ["oidc", "set", "--org", ORG, "--issuer", provider.issuer, "--client-id", provider.client_id]
    argv += ["--client-secret", provider.client_secret, "--role-claim", "groups", "--map", "coordinators=coordinator"]
    assert main(argv) == 0
    client = _bearer(settings, "client", "integ-1")
    coordinator = _bearer(settings, "coordinator", "coord-1")
    ops = _bearer(settings, "ops", "ops-1")
    expected: list[Row] = []

    # Writes: a patient, the same MRN again (409), an update and its replay, a batch, an unknown patient.
    created = intake.post(
        "/v1/patients",
        json={"external_id": MRN},
        headers={**client, "X-Request-ID": "0123abcd-0001-4abc-8def-0123456789ab"},
    )
    assert created.status_code == 201, created.text
    patient = created.json()["id"]
    expected.append((CLIENT, "patient.create", patient, "success"))
    assert intake.post("/v1/patients", json={"external_id": MRN}, headers=client).status_code == 409
    expected.append((CLIENT, "patient.create", patient, "invalid"))
    keyed = {**client, "Idempotency-Key": "audit-key-1"}
    assert intake.post(f"/v1/patients/{patient}/updates", json=_update(), headers=keyed).status_code == 202
    expected.append((CLIENT, "update.create", patient, "success"))
    assert intake.post(f"/v1/patients/{patient}/updates", json=_update(), headers=keyed).status_code == 202
    expected.append((CLIENT, "update.create.replay", patient, "success"))
    batch = {"updates": [_update(at="2026-09-21T10:00:00Z"), _update(at="2026-09-22T10:00:00Z")]}
    assert intake.post(f"/v1/patients/{patient}/updates:batch", json=batch, headers=client).status_code == 202
    expected.append((CLIENT, "update.batch", patient, "success"))
    unknown = str(uuid.uuid4())
    assert intake.post(f"/v1/patients/{unknown}/updates", json=_update(), headers=client).status_code == 404
    expected.append((CLIENT, "update.create", unknown, "not_found"))

    # Another organisation's patient is not found from ours (and is audited in its own organisation).
    theirs = intake.post(
        "/v1/patients", json={"external_id": "MRN-OTHER-1"}, headers=_bearer(settings, "client", "x", OTHER)
    ).json()["id"]

    # Reads: pathway, history, what-if; another organisation's patient.
    assert intake.get(f"/v1/patients/{patient}/pathway", headers=coordinator).status_code == 200
    expected.append((COORD, "pathway.read", patient, "success"))
    assert intake.get(f"/v1/patients/{patient}/pathway/history", headers=coordinator).status_code == 200
    expected.append((COORD, "pathway.history", patient, "success"))
    assert intake.get(f"/v1/patients/{theirs}/pathway", headers=coordinator).status_code == 404
    expected.append((COORD, "pathway.read", theirs, "not_found"))
    what_if = intake.post("/v1/pathway:evaluate", json={"updates": [_update()]}, headers=coordinator)
    assert what_if.status_code == 200, what_if.text
    expected.append((COORD, "pathway.what_if", None, "success"))

    # Reminders: list, snooze (free text in the body), a role refused, the calendar feed.
    snoozed = seed_reminder(settings, ORG, patient)
    assert notifications.get("/v1/reminders", headers=coordinator).status_code == 200
    expected.append((COORD, "reminder.list", patient, "success"))
    assert notifications.get(f"/v1/reminders/{snoozed}", headers=coordinator).status_code == 200
    expected.append((COORD, "reminder.read", patient, "success"))
    until = "2030-01-01T00:00:00Z"
    response = notifications.post(
        f"/v1/reminders/{snoozed}/snooze", json={"until": until, "reason": SNOOZE_REASON}, headers=coordinator
    )
    assert response.status_code == 200, response.text
    expected.append((COORD, "reminder.snooze", patient, "success"))
    assert notifications.post(f"/v1/reminders/{snoozed}/acknowledge", headers=client).status_code == 403
    expected.append((CLIENT, "auth.refused", None, "denied"))
    due = seed_reminder(settings, ORG, patient, kind="opioid_review_4w")
    feed_token = create_token(settings, ORG, "coordinator", "feed-1", typ=FEED)
    assert notifications.get("/v1/reminders.ics", params={"token": feed_token}).status_code == 200
    expected.append(("coordinator:feed-1", "reminder.calendar_feed", patient, "success"))

    # The worklist: sign in through the organisation's provider (one refused: no worklist role), the page,
    # an action, logout, and the logged-out cookie offered again.
    refused_browser = TestClient(notifications.app, follow_redirects=False)
    assert _oidc_sign_in(refused_browser, provider, "reader-9", ["readers"]) == 403
    expected.append(("anonymous:-", "auth.signin", None, "denied"))
    assert _oidc_sign_in(notifications, provider, "coord-1", ["coordinators"]) == 303
    expected.append((COORD, "auth.signin", None, "success"))
    page = notifications.get("/worklist")
    assert page.status_code == 200 and MRN in page.text  # the page shows the MRN; the trail must not
    expected.append((COORD, "worklist.read", patient, "success"))
    form = CSRF.search(page.text)
    assert form
    acted = notifications.post(f"/worklist/reminders/{due}/acknowledge", data={"csrf_token": form.group(1)})
    assert acted.status_code == 303 and "acknowledged" in acted.headers["location"]
    expected.append((COORD, "worklist.reminder.acknowledge", patient, "success"))
    session_cookie = notifications.cookies.get(SESSION_COOKIE)
    form = CSRF.search(notifications.get(acted.headers["location"]).text)
    assert form and session_cookie
    expected.append((COORD, "worklist.read", patient, "success"))
    assert notifications.post("/logout", data={"csrf_token": form.group(1)}).status_code == 303
    expected.append((COORD, "auth.signout", None, "success"))
    stale = TestClient(notifications.app, follow_redirects=False)
    stale.cookies.set(SESSION_COOKIE, session_cookie)
    assert stale.get("/worklist").headers["location"] == "/login"

    # FHIR: a transaction Bundle (its Patient carries an MRN) and the CarePlan search.
    bundle = intake.post(
        "/fhir/r4",
        content=json.dumps(load("postlaminectomy-course.bundle.json")),
        headers={
            **client,
            **FHIR_JSON,
        },
    )
    assert bundle.status_code == 200, bundle.text
    with UnitOfWork(settings, read_only=True) as uow:
        fhir_patient = uow.session.execute(
            select(FhirPatientLink.patient_id).where(FhirPatientLink.org == ORG).distinct()  # type: ignore[arg-type]
        ).scalar_one()
    expected.append((CLIENT, "fhir.bundle", fhir_patient, "success"))
    assert intake.get("/fhir/r4/CarePlan", params={"patient": fhir_patient}, headers=client).status_code == 200
    expected.append((CLIENT, "fhir.careplan.search", fhir_patient, "success"))

    # Configuration change.
    assert intake.put("/v1/organisation/pathway-config", json={"profile": "asra-2020"}, headers=ops).status_code == 200
    expected.append((OPS, "config.pathway.update", None, "success"))

    # Refused authentications, which belong to no organisation: a forged token, a bad sign-in.
    forged = {"Authorization": "Bearer not.a.token"}
    assert intake.get(f"/v1/patients/{patient}/pathway", headers=forged).status_code == 401
    assert _sign_in(TestClient(notifications.app, follow_redirects=False), "garbage-token")

    events = _export(capsys, "--org", ORG)
    assert _rows(events) == Counter(expected)
    everything = _export(capsys)
    unauthenticated = [e for e in everything if e["org"] is None]
    assert _rows(unauthenticated) == Counter(
        [
            ("anonymous:-", "auth.refused", patient, "denied"),
            ("anonymous:-", "auth.signin", None, "denied"),
            ("anonymous:-", "auth.refused", None, "denied"),  # the stale session cookie
        ]
    )
    assert _rows(_export(capsys, "--org", OTHER)) == Counter([("client:x", "patient.create", theirs, "success")])

    # Every row names its route template (never a concrete path) and its request.
    for event in everything:
        assert event["route"].split(" ")[0] in ("GET", "POST", "PUT", "DELETE"), event
        assert patient not in event["route"]
        assert event["request_id"], event
        assert set(event) >= {"time", "actor", "org", "action", "patient_id", "outcome"}
    first = next(e for e in events if e["action"] == "patient.create")
    assert first["request_id"] == "0123abcd-0001-4abc-8def-0123456789ab"
    assert first["route"] == "POST /v1/patients"

    # Nothing posted is in the export: no MRN, no clinical value, no free text.
    text = "\n".join(json.dumps(e) for e in everything)
    for secret in (MRN, "MRN-OTHER-1", "EX-0001", SNOOZE_REASON, "XYZZY", "radicular", "pain_nrs", until):
        assert secret not in text

    # The filters.
    only_patient = _export(capsys, "--patient", patient)
    assert only_patient and all(e["patient_id"] == patient for e in only_patient)
    assert len(only_patient) == sum(1 for e in everything if e["patient_id"] == patient)
    assert _export(capsys, "--since", "2999-01-01T00:00:00Z") == []
    assert len(_export(capsys, "--org", ORG, "--since", events[0]["time"])) == len(events)
