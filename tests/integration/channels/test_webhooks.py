"""Outbound webhooks against a real local receiver that verifies with the standardwebhooks library."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_notifications_app as create_app
from services.notifications.channels.dispatch import handle_event
from services.notifications.channels.dispatcher import dispatch_due
from shared import events
from shared.clock import isoformat, utcnow
from shared.db.tables import ChannelDelivery, Reminder, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.events import Event, to_envelope
from shared.messaging.consumer import consume
from shared.messaging.routing import CHANNELS
from shared.settings import Settings
from tests.integration.channels.support import Receiver, auth, seed_reminder

pytestmark = pytest.mark.integration


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app())


def register(client: TestClient, settings: Settings, url: str, org: str = "org-a", **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook-endpoints", json={"url": url, **extra}, headers=auth(settings, org))
    assert response.status_code == 201, response.text
    return response.json()


def reminder_event(reminder: Reminder, event_type: str = events.REMINDER_DUE, **data: Any) -> Event:
    return Event(
        type=event_type,
        source=events.SOURCE_SCHEDULER,
        subject=reminder.patient_id,
        data={
            "reminder_id": reminder.id,
            "patient_id": reminder.patient_id,
            "org": reminder.org,
            "kind": reminder.kind,
            "due_at": isoformat(reminder.due_at),
            **data,
        },
    )


def deliver_event(settings: Settings, event: Event) -> str:
    return consume(CHANNELS, to_envelope(event), None, handle_event, settings)


def deliveries(settings: Settings) -> list[ChannelDelivery]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(ChannelDelivery).order_by(ChannelDelivery.id)).scalars())
        uow.session.expunge_all()  # detached but loaded: the unit of work's rollback would expire them
        return rows


def drive(settings: Settings, start: datetime, until: datetime) -> datetime:
    """Run dispatcher passes at each delivery's next attempt until `until`; returns the last `now`."""
    now = start
    while now <= until:
        dispatch_due(settings, now)
        pending = [d.next_attempt_at for d in deliveries(settings) if d.status == "pending"]
        if not pending:
            break
        now = max(min(pending), now + timedelta(seconds=1))
    return now


def test_down_receiver_gets_the_delivery_later_with_the_same_webhook_id(settings: Settings, client: TestClient) -> None:
    receiver = Receiver()
    endpoint = register(client, settings, receiver.url)
    receiver.secret = endpoint["secret"]
    assert endpoint["secret"].startswith("whsec_")
    reminder = seed_reminder(settings)
    assert deliver_event(settings, reminder_event(reminder)) == "handled"
    assert deliver_event(settings, reminder_event(reminder)) == "handled"  # a second event is a second delivery
    t0 = utcnow()

    # Down (nothing listening) for two simulated hours: every attempt fails and is rescheduled.
    last = drive(settings, t0, t0 + timedelta(hours=2))
    rows = deliveries(settings)
    assert [row.status for row in rows] == ["pending", "pending"]
    assert all(row.attempts >= 8 for row in rows), [row.attempts for row in rows]
    assert all("ConnectError" in (row.last_error or "") for row in rows)

    # Up, but answering 503 once per delivery, then 204.
    receiver.status = 503
    receiver.start()
    try:
        now = max(last, max(row.next_attempt_at for row in rows))
        assert dispatch_due(settings, now) == 2
        receiver.status = 204
        drive(settings, now + timedelta(seconds=1), now + timedelta(hours=6))
    finally:
        receiver.stop()

    rows = deliveries(settings)
    assert [row.status for row in rows] == ["delivered", "delivered"]
    assert all(r.verified for r in receiver.received), [r.error for r in receiver.received]
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 4 and set(ids) == {row.message_id for row in rows}
    assert ids.count(rows[0].message_id) == 2  # the retry after the 503 carried the same webhook-id

    body = json.loads(receiver.received[-1].body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == events.REMINDER_DUE
    assert set(body["data"]) == {"reminder_id", "patient_id", "org", "kind", "due_at"}
    raw = b"".join(r.body for r in receiver.received)
    assert b"MRN" not in raw and b"opioid reassessment" not in raw and b"G3" not in raw


def test_verifier_rejects_tampering_wrong_secret_and_stale_timestamps(settings: Settings) -> None:
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    from services.notifications.channels.signing import new_message_id, new_secret, webhook_headers

    secret, body, message_id = new_secret(), '{"type":"carepath.reminder.due","data":{}}', new_message_id()
    verifier = Webhook(secret)
    assert verifier.verify(body, webhook_headers(message_id, utcnow(), body, [secret])) is not None
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body.replace("due", "dux"), webhook_headers(message_id, utcnow(), body, [secret]))
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, webhook_headers(message_id, utcnow(), body, [new_secret()]))
    for offset in (timedelta(minutes=-6), timedelta(minutes=6)):
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body, webhook_headers(message_id, utcnow() + offset, body, [secret]))


def test_rotation_signs_with_both_secrets_during_the_overlap(settings: Settings, client: TestClient) -> None:
    old_receiver, new_receiver = Receiver().start(), Receiver().start()
    try:
        created = register(client, settings, old_receiver.url)
        old_receiver.secret = created["secret"]
        rotated = client.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=auth(settings, "org-a"))
        assert rotated.status_code == 200 and rotated.json()["secret"] != created["secret"]
        new_receiver.secret = rotated.json()["secret"]
        assert "secret" not in client.get("/v1/webhook-endpoints", headers=auth(settings, "org-a")).json()["items"][0]
        with UnitOfWork(settings, read_only=True) as uow:  # both secrets are encrypted at rest
            stored = uow.session.get(WebhookEndpoint, created["id"])
            assert stored is not None and stored.previous_secret is not None
            assert stored.secret.startswith("sealed:") and stored.previous_secret.startswith("sealed:")
            assert new_receiver.secret not in stored.secret and old_receiver.secret not in stored.previous_secret
            assert new_receiver.secret.removeprefix("whsec_") not in stored.secret

        deliver_event(settings, reminder_event(seed_reminder(settings)))
        dispatch_due(settings, utcnow())
        signature = old_receiver.received[0].headers["webhook-signature"]
        assert len(signature.split(" ")) == 2
        from standardwebhooks import Webhook

        first = old_receiver.received[0]
        assert first.verified  # the old secret still verifies during the overlap …
        Webhook(new_receiver.secret).verify(first.body, first.headers)  # … and so does the new one

        # After the overlap only the new secret signs: the old receiver rejects, the new one accepts.
        deliver_event(settings, reminder_event(seed_reminder(settings, kind="pdmp_review")))
        dispatch_due(settings, utcnow() + timedelta(hours=25))
        late = old_receiver.received[1]
        assert not late.verified and len(late.headers["webhook-signature"].split(" ")) == 1
        Webhook(new_receiver.secret).verify(late.body, late.headers)
    finally:
        old_receiver.stop()
        new_receiver.stop()


def test_loopback_and_private_destinations_are_refused_unless_allowed(
    settings: Settings, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver().start()
    try:
        endpoint = register(client, settings, receiver.url)  # allowed by the test settings
        receiver.secret = endpoint["secret"]
        monkeypatch.setenv("CAREPATH_ALLOW_PRIVATE_WEBHOOKS", "false")
        from shared.settings import get_settings

        get_settings.cache_clear()
        strict = get_settings()
        for url in (
            receiver.url,
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "http://example.com/x",
            "https://user:pw@example.com/x",
        ):
            response = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth(strict, "org-a"))
            assert response.status_code == 422, (url, response.text)

        # Registered while allowed, sent while not: the send-time check refuses to connect.
        deliver_event(strict, reminder_event(seed_reminder(strict)))
        dispatch_due(strict, utcnow())
        (row,) = deliveries(strict)
        assert row.status == "pending" and "non-public" in (row.last_error or "")
        assert receiver.received == []
    finally:
        receiver.stop()


def test_public_address_check(settings: Settings) -> None:
    from shared.ssrf import DestinationRefused, check_url

    def resolver(*answers: str):  # type: ignore[no-untyped-def]
        return lambda host, port: list(answers)

    assert check_url("https://hooks.example.org/x", False, resolver("93.184.216.34"))
    with pytest.raises(DestinationRefused):  # one private answer among public ones is enough to refuse
        check_url("https://hooks.example.org/x", False, resolver("93.184.216.34", "192.168.1.5"))
    for address in ("0.0.0.0", "100.64.0.1", "fe80::1", "fc00::1", "224.0.0.1", "::ffff:10.0.0.1"):
        with pytest.raises(DestinationRefused):
            check_url("https://hooks.example.org/x", False, resolver(address))


def test_endpoint_disabled_after_persistent_failure(settings: Settings, client: TestClient) -> None:
    receiver = Receiver()  # never started
    endpoint = register(client, settings, receiver.url)
    deliver_event(settings, reminder_event(seed_reminder(settings)))
    t0 = utcnow()
    drive(settings, t0, t0 + timedelta(hours=80))
    (row,) = deliveries(settings)
    assert row.status == "failed" and row.attempts > 20
    assert row.last_attempt_at - t0 >= timedelta(hours=72)  # retried for at least 72 hours
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth(settings, "org-a")).json()
    assert shown["status"] == "disabled"
    history = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(settings, "org-a"))
    (item,) = history.json()["items"]
    assert item["status"] == "failed" and item["webhook_id"] == row.message_id and item["attempts"] == row.attempts
    other = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=auth(settings, "org-b"))
    assert other.status_code == 404

    # New events do not reach a disabled endpoint; re-enabling lets them through again.
    assert deliver_event(settings, reminder_event(seed_reminder(settings, kind="pdmp_review"))) == "handled"
    assert len(deliveries(settings)) == 1
    enabled = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/enable", headers=auth(settings, "org-a"))
    assert enabled.json()["status"] == "active"
    deliver_event(settings, reminder_event(seed_reminder(settings, kind="urine_drug_test")))
    assert len(deliveries(settings)) == 2


def test_escalations_go_to_the_escalation_channel_only(settings: Settings, client: TestClient) -> None:
    team, escalation = Receiver().start(), Receiver().start()
    try:
        team.secret = register(client, settings, team.url)["secret"]
        escalation.secret = register(client, settings, escalation.url, escalation=True)["secret"]
        register(client, settings, team.url, org="org-b")  # another organisation's endpoint hears nothing
        reminder = seed_reminder(settings, kind="urgent_surgical_referral")
        deliver_event(settings, reminder_event(reminder))
        deliver_event(settings, reminder_event(reminder, events.REMINDER_ESCALATED, escalated_at=isoformat(utcnow())))
        assert dispatch_due(settings, utcnow()) == 2
    finally:
        team.stop()
        escalation.stop()
    assert [json.loads(r.body)["type"] for r in team.received] == [events.REMINDER_DUE]
    assert [json.loads(r.body)["type"] for r in escalation.received] == [events.REMINDER_ESCALATED]
    assert "escalated_at" in json.loads(escalation.received[0].body)["data"]
    assert all(r.verified for r in team.received + escalation.received)


def test_unknown_reminder_and_duplicate_events(settings: Settings, client: TestClient) -> None:
    register(client, settings, Receiver().url)
    ghost = Event(
        type=events.REMINDER_DUE,
        source=events.SOURCE_SCHEDULER,
        subject="p",
        data={"reminder_id": "no-such-reminder", "org": "org-a", "kind": "x", "due_at": "2026-01-01T00:00:00Z"},
    )
    assert deliver_event(settings, ghost) == "handled"
    assert deliveries(settings) == []
    event = reminder_event(seed_reminder(settings))
    assert deliver_event(settings, event) == "handled"
    assert deliver_event(settings, event) == "duplicate"
    assert len(deliveries(settings)) == 1


def test_configuration_is_scoped_to_the_organisation(settings: Settings, client: TestClient) -> None:
    endpoint = register(client, settings, Receiver().url)
    other = auth(settings, "org-b")
    for method, path in (
        ("get", f"/v1/webhook-endpoints/{endpoint['id']}"),
        ("delete", f"/v1/webhook-endpoints/{endpoint['id']}"),
        ("post", f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"),
    ):
        assert client.request(method, path, headers=other).status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=other).json() == {"items": []}
    assert client.get("/v1/webhook-endpoints", headers=auth(settings, "org-a", "client")).status_code == 403
    assert client.get("/v1/webhook-endpoints").status_code == 401
    assert client.get("/v1/webhook-endpoints", headers=auth(settings, "org-a", "coordinator")).status_code == 200
    assert client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth(settings, "org-a")).status_code == 204
    assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=auth(settings, "org-a")).status_code == 404

    recipient = client.post(
        "/v1/email-recipients", json={"address": "team@example.org"}, headers=auth(settings, "org-a")
    )
    assert recipient.status_code == 201
    rid = recipient.json()["id"]
    assert client.delete(f"/v1/email-recipients/{rid}", headers=other).status_code == 404
    bad = client.post("/v1/email-recipients", json={"address": "x@y\r\nBcc: z@w.org"}, headers=auth(settings, "org-a"))
    assert bad.status_code == 422
    assert client.delete(f"/v1/email-recipients/{rid}", headers=auth(settings, "org-a")).status_code == 204
    assert client.get("/v1/email-recipients", headers=auth(settings, "org-a")).json() == {"items": []}


def test_escalations_fall_back_to_regular_channels_without_an_escalation_channel(
    settings: Settings, client: TestClient
) -> None:
    team = Receiver().start()
    try:
        team.secret = register(client, settings, team.url)["secret"]
        reminder = seed_reminder(settings, kind="urgent_surgical_referral")
        deliver_event(settings, reminder_event(reminder, events.REMINDER_ESCALATED, escalated_at=isoformat(utcnow())))
        assert dispatch_due(settings, utcnow()) == 1
    finally:
        team.stop()
    assert [json.loads(r.body)["type"] for r in team.received] == [events.REMINDER_ESCALATED]
