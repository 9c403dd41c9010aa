"""The dispatcher with the official fake senders: the scheduler's events, leases, parallel passes, the loop,
and the retry policy's values."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.notifications.channels import policy, store
from services.notifications.channels.dispatch import handle_event
from services.notifications.channels.dispatcher import dispatch_due, run_dispatcher
from services.notifications.channels.fakes import recording_senders
from services.notifications.channels.policy import Delivered, GiveUp, Outcome, RetryAt
from services.notifications.scheduler import deliver_due
from shared import events
from shared.clock import utcnow
from shared.db.tables import ChannelDelivery, EmailRecipient, OutboxMessage, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.messaging.consumer import consume
from shared.messaging.routing import CHANNELS
from shared.settings import Settings
from tests.integration.channels.support import seed_reminder

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def add_targets(settings: Settings, org: str = "org-a", endpoints: int = 1, emails: int = 0) -> None:
    now = utcnow()
    with UnitOfWork(settings) as uow:
        for n in range(endpoints):
            uow.session.add(
                WebhookEndpoint(
                    org=org,
                    url=f"https://hooks.example.org/{n}",
                    secret="whsec_" + "A" * 43,
                    created_at=now,
                    updated_at=now,
                )
            )
        for n in range(emails):
            uow.session.add(EmailRecipient(org=org, address=f"team{n}@example.org", created_at=now))
        uow.commit()


def channel_outbox(settings: Settings) -> list[OutboxMessage]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(OutboxMessage).where(OutboxMessage.consumer == CHANNELS)).scalars())
        uow.session.expunge_all()
        return rows


def delivery_rows(settings: Settings) -> list[ChannelDelivery]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(ChannelDelivery).order_by(ChannelDelivery.id)).scalars())
        uow.session.expunge_all()
        return rows


@pytest.mark.integration
def test_scheduler_events_reach_the_channels(settings: Settings) -> None:
    """The reminders scheduler's own carepath.reminder.due event, through the consumer, to a webhook."""
    add_targets(settings, endpoints=1, emails=1)
    now = utcnow()
    reminder = seed_reminder(
        settings, status="scheduled", due_at=now - timedelta(minutes=1), next_action_at=now - timedelta(minutes=1)
    )
    assert deliver_due(settings, now, worker_id="test", limit=10)["delivered"] == 1
    (row,) = channel_outbox(settings)
    assert row.event_type == events.REMINDER_DUE
    assert consume(CHANNELS, row.envelope, row.id, handle_event, settings) == "handled"
    senders, webhooks, emails = recording_senders()
    assert dispatch_due(settings, utcnow(), senders) == 2
    ((_url, body, headers),) = webhooks.sent
    payload = json.loads(body)
    assert payload["data"]["reminder_id"] == reminder.id and payload["data"]["kind"] == "opioid_review_4w"
    assert set(payload["data"]) <= {"reminder_id", "patient_id", "org", "kind", "due_at", "delivered_at"}
    assert headers["webhook-id"].startswith("msg_")
    assert emails.sent[0]["To"] == "team0@example.org"
    assert [r.status for r in delivery_rows(settings)] == ["delivered", "delivered"]


@pytest.mark.integration
def test_a_dead_dispatchers_claim_comes_back_after_the_lease(settings: Settings) -> None:
    add_targets(settings)
    consume(
        CHANNELS,
        events.to_envelope(
            events.Event(
                type=events.REMINDER_DUE,
                source=events.SOURCE_SCHEDULER,
                subject="p",
                data={"reminder_id": seed_reminder(settings).id},
            )
        ),
        None,
        handle_event,
        settings,
    )
    now = utcnow()
    with UnitOfWork(settings) as uow:  # a dispatcher claims, then dies before sending
        assert len(store.claim_due(uow, now, now + policy.CLAIM_LEASE, "dead", 10)) == 1
        uow.commit()
    senders, _webhooks, _ = recording_senders()
    assert dispatch_due(settings, now + timedelta(seconds=30), senders) == 0
    assert dispatch_due(settings, now + policy.CLAIM_LEASE + timedelta(seconds=1), senders) == 1
    assert [r.status for r in delivery_rows(settings)] == ["delivered"]


@pytest.mark.integration
def test_parallel_passes_send_each_delivery_once(settings: Settings) -> None:
    add_targets(settings, endpoints=3)
    for kind in ("opioid_review_4w", "pdmp_review", "urine_drug_test", "pt_follow_up", "pt_start_check"):
        reminder = seed_reminder(settings, kind=kind)
        consume(
            CHANNELS,
            events.to_envelope(
                events.Event(
                    type=events.REMINDER_DUE,
                    source=events.SOURCE_SCHEDULER,
                    subject=reminder.patient_id,
                    data={"reminder_id": reminder.id},
                )
            ),
            None,
            handle_event,
            settings,
        )
    senders, webhooks, _ = recording_senders()
    now = utcnow()

    def passes() -> int:
        return sum(dispatch_due(settings, now, senders) for _ in range(3))

    with ThreadPoolExecutor(max_workers=3) as pool:
        total = sum(pool.map(lambda _: passes(), range(3)))
    ids = [headers["webhook-id"] for _, _, headers in webhooks.sent]
    assert total == 15 and len(ids) == 15 and len(set(ids)) == 15
    assert {r.status for r in delivery_rows(settings)} == {"delivered"}


@pytest.mark.integration
def test_run_dispatcher_loop_delivers_and_stops(settings: Settings) -> None:
    from tests.integration.channels.support import Receiver

    receiver = Receiver().start()
    try:
        now = utcnow()
        with UnitOfWork(settings) as uow:
            endpoint = WebhookEndpoint(
                org="org-a", url=receiver.url, secret="whsec_" + "B" * 43, created_at=now, updated_at=now
            )
            uow.session.add(endpoint)
            uow.commit()
        receiver.secret = endpoint.secret
        stop = threading.Event()
        thread = threading.Thread(target=run_dispatcher, args=(stop, settings), daemon=True)
        thread.start()
        reminder = seed_reminder(settings)
        consume(
            CHANNELS,
            events.to_envelope(
                events.Event(
                    type=events.REMINDER_DUE,
                    source=events.SOURCE_SCHEDULER,
                    subject=reminder.patient_id,
                    data={"reminder_id": reminder.id},
                )
            ),
            None,
            handle_event,
            settings,
        )
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert len(receiver.received) == 1 and receiver.received[0].verified
    finally:
        receiver.stop()


def test_policy_values() -> None:
    fail = Outcome(ok=False, error="HTTP 503", status_code=503)
    assert policy.decide(Outcome(ok=True), attempts=1, created_at=T0, now=T0) == Delivered(at=T0)
    first = policy.decide(fail, attempts=1, created_at=T0, now=T0, rand=lambda: 0.0)
    assert first == RetryAt(at=T0 + timedelta(seconds=5))
    assert policy.backoff(1, lambda: 1.0) == timedelta(seconds=10)
    assert policy.backoff(30, lambda: 1.0) == policy.MAX_DELAY
    assert policy.backoff(30, lambda: 0.0) == policy.MAX_DELAY / 2
    late = T0 + timedelta(hours=71, minutes=59)
    assert isinstance(policy.decide(fail, attempts=40, created_at=T0, now=late), RetryAt)
    assert isinstance(policy.decide(fail, attempts=41, created_at=T0, now=T0 + timedelta(hours=72)), GiveUp)
    gone = Outcome(ok=False, status_code=410, error="HTTP 410 Gone", permanent=True, disable_target=True)
    assert policy.decide(gone, attempts=1, created_at=T0, now=T0) == GiveUp("HTTP 410 Gone", disable_target=True)
    assert not policy.should_disable(None, T0)
    assert policy.should_disable(T0, T0 + timedelta(hours=72))
    assert policy.signing_secrets("new", "old", T0 + timedelta(hours=1), T0) == ["new", "old"]
    assert policy.signing_secrets("new", "old", T0, T0) == ["new"]
