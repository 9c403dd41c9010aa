"""The daily cap on notifications per patient (deliveries beyond it are held, never sent; the worklist still
shows every reminder), and the retention jobs for Idempotency-Key records and channel deliveries."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.notifications.channels import store
from services.notifications.channels.dispatch import handle_event
from services.notifications.channels.dispatcher import dispatch_due
from services.notifications.channels.fakes import recording_senders
from services.notifications.scheduler import deliver_due
from services.notifications.web import worklist
from shared import audit, retention
from shared.clock import utcnow
from shared.db.tables import ChannelDelivery, IdempotencyRecord, OutboxMessage, Patient, Reminder, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.messaging.consumer import consume
from shared.messaging.routing import CHANNELS
from tests.integration.limits.conftest import Configure

pytestmark = pytest.mark.integration
ORG = "org-cap"


def _patient_with_reminders(count: int) -> tuple[str, list[str]]:
    now = utcnow()
    with UnitOfWork() as uow:
        uow.session.add(
            WebhookEndpoint(
                org=ORG, url="https://hooks.example.org/cap", secret="whsec_" + "A" * 43, created_at=now, updated_at=now
            )
        )
        patient = Patient(org=ORG, external_id=f"MRN-CAP-{uuid.uuid4().hex[:8]}", created_at=now)
        uow.session.add(patient)
        uow.session.flush()
        ids = []
        for n in range(count):
            reminder = Reminder(
                org=ORG,
                patient_id=patient.id,
                kind=f"kind_{n}",
                due_at=now - timedelta(minutes=10 - n),
                status="scheduled",
                text="due",
                citation="G1",
                fact_ids=[],
                created_at=now,
                updated_at=now,
                next_action_at=now - timedelta(minutes=10 - n),
            )
            uow.session.add(reminder)
            uow.session.flush()
            ids.append(reminder.id)
        uow.commit()
        return patient.id, ids


def _consume_channel_events() -> None:
    with UnitOfWork(read_only=True) as uow:
        rows = list(uow.session.execute(select(OutboxMessage).where(OutboxMessage.consumer == CHANNELS)).scalars())
        work = [(row.envelope, row.id) for row in rows]
    for envelope, row_id in work:
        assert consume(CHANNELS, envelope, row_id, handle_event) == "handled"


def test_notifications_beyond_the_daily_cap_are_held_and_the_worklist_still_shows_them(configure: Configure) -> None:
    settings = configure(notifications_per_patient_per_day=2)
    patient_id, reminders = _patient_with_reminders(3)
    assert deliver_due(settings, utcnow(), worker_id="test", limit=10)["delivered"] == 3
    _consume_channel_events()
    with UnitOfWork(read_only=True) as uow:
        rows = list(uow.session.execute(select(ChannelDelivery).order_by(ChannelDelivery.id)).scalars())
        by_status = sorted((row.reminder_id, row.status) for row in rows)
    assert sorted(status for _, status in by_status) == [store.HELD, store.PENDING, store.PENDING]
    senders, webhooks, _emails = recording_senders()
    assert dispatch_due(settings, utcnow() + timedelta(seconds=1), senders) == 2
    assert len(webhooks.sent) == 2  # the held one is never sent, however long we wait
    assert dispatch_due(settings, utcnow() + timedelta(days=2), senders) == 0
    # Each sent notification is in the audit trail, with its patient; the held one is not.
    sent = [e for e in audit.export(settings, org=ORG) if e["action"] == "notification.webhook.sent"]
    assert [(e["patient_id"], e["actor"], e["outcome"]) for e in sent] == [
        (patient_id, "system:dispatcher", "success")
    ] * 2
    # The coordinator still sees all three on the worklist.
    with UnitOfWork(read_only=True) as uow:
        shown = {row.id for row in worklist.rows(uow, ORG, utcnow())}
    assert shown == set(reminders)


def test_the_cap_counts_per_patient(configure: Configure) -> None:
    settings = configure(notifications_per_patient_per_day=1)
    _patient_with_reminders(1)
    _second_patient, _ = _patient_with_reminders(1)
    deliver_due(settings, utcnow(), worker_id="test", limit=10)
    _consume_channel_events()
    with UnitOfWork(read_only=True) as uow:
        statuses = list(uow.session.execute(select(ChannelDelivery.status)).scalars())  # type: ignore[call-overload]
    # Two patients, one notification each (two endpoints now: one delivery per endpoint per event).
    assert store.HELD not in statuses and len(statuses) >= 2


def test_retention_deletes_only_old_rows(configure: Configure) -> None:
    settings = configure(idempotency_retention_days=7, delivery_retention_days=30)
    now = utcnow()
    with UnitOfWork() as uow:
        for key, age in (("old", 8), ("recent", 6)):
            uow.session.add(
                IdempotencyRecord(
                    org=ORG,
                    key=key,
                    request_hash="0" * 64,
                    state="done",
                    status_code=202,
                    created_at=now - timedelta(days=age),
                )
            )
        for n, (status, age) in enumerate(
            [
                (store.DELIVERED, 31),
                (store.FAILED, 31),
                (store.HELD, 31),
                (store.CANCELLED, 40),
                (store.PENDING, 31),  # still to be sent: never pruned
                (store.DELIVERED, 29),
            ]
        ):
            uow.session.add(
                ChannelDelivery(
                    message_id=f"msg_{n}",
                    org=ORG,
                    channel="webhook",
                    target_id="t",
                    event_id=f"e{n}",
                    event_type="carepath.reminder.due",
                    payload={},
                    status=status,
                    created_at=now - timedelta(days=age),
                )
            )
        uow.commit()
    with UnitOfWork() as uow:
        pruned = retention.prune(uow, now, settings)
        uow.commit()
    assert pruned == retention.Pruned(idempotency_records=1, deliveries=4)
    with UnitOfWork(read_only=True) as uow:
        keys = set(uow.session.execute(select(IdempotencyRecord.key)).scalars())  # type: ignore[call-overload]
        left = sorted(uow.session.execute(select(ChannelDelivery.message_id)).scalars())  # type: ignore[call-overload]
    assert keys == {"recent"}
    assert left == ["msg_4", "msg_5"]
