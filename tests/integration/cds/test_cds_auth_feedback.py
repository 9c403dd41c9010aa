"""CDS client JWTs as the CDS Hooks specification says (registered issuer, its key, aud = the endpoint called,
exp within 5 minutes, jti once), and feedback: recorded, and a reminder card's override acts on the reminder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import col

from carepath.cli import main as carepath_main
from shared.db.tables import CdsFeedback, Reminder, ReminderTransition
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.cds.cds_support import (
    BASE,
    Keys,
    bearer,
    call,
    client_jwt,
    codes,
    first_line_history,
    seed_patient,
)
from tests.integration.cds.conftest import INLINE_ISSUER

pytestmark = pytest.mark.integration
URL = f"{BASE}/carepath-patient-view"


def view(fhir_id: str = "pat-1") -> dict[str, object]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": fhir_id, "userId": "Practitioner/1"},
    }


def status_with(client: TestClient, token: str, url: str = URL) -> int:
    return client.post(url, json=view(), headers=bearer(token)).status_code


def test_client_jwt_checks(client: TestClient, keys: Keys) -> None:
    assert status_with(client, client_jwt(keys, URL)) == 200
    assert status_with(client, client_jwt(keys, URL, key="ec", issuer=INLINE_ISSUER)) == 200  # inline ES256 key
    expired = client_jwt(keys, URL, issued=datetime.now(UTC) - timedelta(minutes=10))
    assert status_with(client, expired) == 401
    assert status_with(client, client_jwt(keys, f"{BASE}/carepath-order-sign")) == 401  # another endpoint's aud
    assert status_with(client, client_jwt(keys, "https://elsewhere.example/cds-services/carepath-patient-view")) == 401
    assert status_with(client, client_jwt(keys, URL, issuer="https://unknown.example/ehr")) == 401
    assert status_with(client, client_jwt(keys, URL, key="other")) == 401  # signed by a key nobody registered
    assert status_with(client, client_jwt(keys, URL, key="ec")) == 401  # the EC key is not this issuer's
    assert status_with(client, client_jwt(keys, URL, lifetime=timedelta(hours=1))) == 401  # exp too far
    replayed = client_jwt(keys, URL, jti="once-only-jti")
    assert status_with(client, replayed) == 200
    assert status_with(client, replayed) == 401
    tampered = client_jwt(keys, URL)
    head, payload, signature = tampered.split(".")
    assert status_with(client, f"{head}.{payload}.{signature[::-1]}") == 401
    assert status_with(client, "not-a-jwt") == 401
    assert client.post(URL, json=view()).status_code == 401
    assert client.post(f"{URL}/feedback", json={"feedback": []}).status_code == 401


def test_register_command_refuses_bad_input(tmp_path: object, settings: Settings) -> None:
    assert carepath_main(["cds-client", "register", "--org", "org-a", "--issuer", "x", "--jwks-url", "ftp://x"]) == 2
    assert (
        carepath_main(["cds-client", "register", "--org", "org-a", "--issuer", "x", "--jwk-file", "/nonexistent"]) == 2
    )


def _reminder(settings: Settings, patient_id: str, kind: str, status: str, due_days_ago: float) -> str:
    now = datetime.now(UTC)
    reminder = Reminder(
        org="org-a",
        patient_id=patient_id,
        kind=kind,
        due_at=now - timedelta(days=due_days_ago),
        status=status,
        text=f"{kind.replace('_', ' ')} is due",
        citation="G1",
        sources=[{"code": "G1", "title": "Guideline 1", "url": None}],
        created_at=now,
        updated_at=now,
    )
    with UnitOfWork(settings) as uow:
        uow.session.add(reminder)
        uow.commit()
        return reminder.id


def feedback(card: str, outcome: str, code: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {"card": card, "outcome": outcome, "outcomeTimestamp": datetime.now(UTC).isoformat()}
    if code:
        system = "https://carepath.dev/fhir/CodeSystem/cds-override-reason"
        item["overrideReason"] = {"reason": {"system": system, "code": code}, "userComment": "seen today"}
    return {"feedback": [item]}


def test_feedback_recorded_and_overrides_act_on_reminders(client: TestClient, settings: Settings, keys: Keys) -> None:
    patient_id = seed_patient(client, settings, "pat-1", first_line_history())
    snooze_me = _reminder(settings, patient_id, "active_pt_review", "due", 3)
    dismiss_me = _reminder(settings, patient_id, "first_line_review", "due", 1)
    _reminder(settings, patient_id, "later_thing", "scheduled", -5)  # not due yet: no card
    answer = call(client, keys, "carepath-patient-view", view())
    by_uuid = {card["uuid"]: card for card in answer["cards"]}
    assert snooze_me in by_uuid and dismiss_me in by_uuid and "later_thing" not in codes(answer)
    assert by_uuid[snooze_me]["summary"].startswith("Overdue since")
    reasons = {r["code"] for r in by_uuid[snooze_me]["overrideReasons"]}
    assert {"snooze_7d", "dismiss_already_done"} <= reasons
    flag_card = next(c for c in answer["cards"] if c["uuid"] not in (snooze_me, dismiss_me))

    url = f"{URL}/feedback"
    for body in (
        feedback(snooze_me, "overridden", "snooze_7d"),
        feedback(dismiss_me, "overridden", "dismiss_already_done"),
        feedback(flag_card["uuid"], "accepted"),
    ):
        response = client.post(url, json=body, headers=bearer(client_jwt(keys, url)))
        assert response.status_code == 200, response.text
    with UnitOfWork(settings, read_only=True) as uow:
        snoozed = uow.session.get(Reminder, snooze_me)
        dismissed = uow.session.get(Reminder, dismiss_me)
        assert snoozed is not None and dismissed is not None
        assert snoozed.status == "snoozed" and snoozed.snoozed_until is not None
        assert snoozed.snoozed_until > datetime.now(UTC) + timedelta(days=6)
        assert dismissed.status == "dismissed" and dismissed.dismiss_reason == "already_done"
        transitions = {
            (t.reminder_id, t.from_status, t.to_status)
            for t in uow.session.execute(select(ReminderTransition)).scalars()
        }
        assert transitions == {(snooze_me, "due", "snoozed"), (dismiss_me, "due", "dismissed")}
        rows = {r.card_uuid: r for r in uow.session.execute(select(CdsFeedback)).scalars()}
        assert rows[snooze_me].outcome == "overridden" and rows[snooze_me].override_code == "snooze_7d"
        assert rows[snooze_me].user_comment == "seen today" and rows[snooze_me].reminder_id == snooze_me
        assert rows[snooze_me].action == "reminder_snoozed" and rows[dismiss_me].action == "reminder_dismissed"
        assert rows[flag_card["uuid"]].outcome == "accepted" and rows[flag_card["uuid"]].action is None
        assert all(r.service_id == "carepath-patient-view" and r.org == "org-a" for r in rows.values())
    # No longer due: the snoozed and the dismissed reminder give no card now.
    after = call(client, keys, "carepath-patient-view", view())
    assert not {snooze_me, dismiss_me} & {card["uuid"] for card in after["cards"]}
    # Dismissing the dismissed one again: recorded, the reminder is unchanged (no invalid transition).
    again = client.post(
        url, json=feedback(dismiss_me, "overridden", "dismiss_not_applicable"), headers=bearer(client_jwt(keys, url))
    )
    assert again.status_code == 200
    with UnitOfWork(settings, read_only=True) as uow:
        reminder = uow.session.get(Reminder, dismiss_me)
        assert reminder is not None and reminder.dismiss_reason == "already_done"
        count = len(
            list(
                uow.session.execute(
                    select(ReminderTransition).where(col(ReminderTransition.reminder_id) == dismiss_me)
                ).scalars()
            )
        )
        assert count == 1


def test_other_organisation_feedback_does_not_touch_the_reminder(
    client: TestClient, settings: Settings, keys: Keys
) -> None:
    from tests.integration.cds.conftest import OTHER_ORG_ISSUER

    patient_id = seed_patient(client, settings, "pat-1", first_line_history())
    reminder_id = _reminder(settings, patient_id, "active_pt_review", "due", 3)
    url = f"{URL}/feedback"
    token = client_jwt(keys, url, issuer=OTHER_ORG_ISSUER)
    assert (
        client.post(
            url, json=feedback(reminder_id, "overridden", "dismiss_already_done"), headers=bearer(token)
        ).status_code
        == 200
    )
    with UnitOfWork(settings, read_only=True) as uow:
        reminder = uow.session.get(Reminder, reminder_id)
        assert reminder is not None and reminder.status == "due"


def test_malformed_feedback_is_refused_and_stores_nothing(client: TestClient, settings: Settings, keys: Keys) -> None:
    url = f"{URL}/feedback"
    for body in (
        {"feedback": []},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": datetime.now(UTC).isoformat()}]},
        {"feedback": [{"card": "x", "outcome": "accepted"}]},
        {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00"}]},
        {"nothing": True},
    ):
        assert client.post(url, json=body, headers=bearer(client_jwt(keys, url))).status_code == 422, body
    with UnitOfWork(settings, read_only=True) as uow:
        assert list(uow.session.execute(select(CdsFeedback)).scalars()) == []
