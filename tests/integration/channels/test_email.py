"""Email through a real SMTP server (aiosmtpd on a free local port)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_notifications_app as create_app
from services.notifications.channels.dispatch import handle_event
from services.notifications.channels.dispatcher import dispatch_due
from shared import events
from shared.clock import isoformat, utcnow
from shared.db.tables import ChannelDelivery
from shared.db.uow import UnitOfWork
from shared.events import Event, to_envelope
from shared.messaging.consumer import consume
from shared.messaging.routing import CHANNELS
from shared.settings import Settings, get_settings
from tests.integration.channels.support import auth, free_port, seed_reminder

pytestmark = pytest.mark.integration


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CAREPATH_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("CAREPATH_SMTP_FROM", "carepath@clinic.example")
    get_settings.cache_clear()
    yield get_settings()


def test_due_and_escalated_reminders_are_emailed_without_phi(smtp_settings: Settings) -> None:
    settings = smtp_settings
    client = TestClient(create_app())
    for address, escalation in (("team@clinic.example", False), ("lead@clinic.example", True)):
        response = client.post(
            "/v1/email-recipients",
            json={"address": address, "escalation": escalation},
            headers=auth(settings, "org-a", "coordinator"),
        )
        assert response.status_code == 201
    reminder = seed_reminder(settings)
    for event_type in (events.REMINDER_DUE, events.REMINDER_ESCALATED):
        event = Event(
            type=event_type,
            source=events.SOURCE_SCHEDULER,
            subject=reminder.patient_id,
            data={
                "reminder_id": reminder.id,
                "patient_id": reminder.patient_id,
                "org": "org-a",
                "kind": reminder.kind,
                "due_at": isoformat(reminder.due_at),
            },
        )
        assert consume(CHANNELS, to_envelope(event), None, handle_event, settings) == "handled"

    # The SMTP server is down at first: the attempt fails and is retried later.
    t0 = utcnow()
    assert dispatch_due(settings, t0) == 2
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(ChannelDelivery)).scalars())
        assert {(r.status, r.attempts) for r in rows} == {("pending", 1)}
        retry_at = max(r.next_attempt_at for r in rows)
    assert retry_at > t0

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=settings.smtp_port)
    controller.start()
    try:
        assert dispatch_due(settings, retry_at + timedelta(seconds=1)) == 2
    finally:
        controller.stop()

    by_recipient = {rcpt[0]: message for _, rcpt, message in inbox.messages}
    assert set(by_recipient) == {"team@clinic.example", "lead@clinic.example"}
    assert "due" in by_recipient["team@clinic.example"]["Subject"]
    assert "ESCALATED" in by_recipient["lead@clinic.example"]["Subject"]
    for _, _, message in inbox.messages:
        assert message["From"] == "carepath@clinic.example"
        text = message.get_payload(decode=True).decode()
        assert reminder.id in text and reminder.kind in text
        assert "MRN" not in text and "opioid reassessment" not in text and "G3" not in text
    with UnitOfWork(settings, read_only=True) as uow:
        statuses = list(uow.session.execute(select(ChannelDelivery.status)).scalars())
    assert statuses == ["delivered", "delivered"]


def test_permanent_smtp_refusal_gives_up(smtp_settings: Settings) -> None:
    settings = smtp_settings

    class Refusing:
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
            return "550 no such user"

    client = TestClient(create_app())
    client.post("/v1/email-recipients", json={"address": "gone@clinic.example"}, headers=auth(settings, "org-a"))
    reminder = seed_reminder(settings)
    event = Event(
        type=events.REMINDER_DUE,
        source=events.SOURCE_SCHEDULER,
        subject=reminder.patient_id,
        data={"reminder_id": reminder.id, "org": "org-a"},
    )
    consume(CHANNELS, to_envelope(event), None, handle_event, settings)
    controller = Controller(Refusing(), hostname="127.0.0.1", port=settings.smtp_port)
    controller.start()
    try:
        assert dispatch_due(settings, utcnow()) == 1
    finally:
        controller.stop()
    with UnitOfWork(settings, read_only=True) as uow:
        (row,) = uow.session.execute(select(ChannelDelivery)).scalars()
        assert row.status == "failed" and row.attempts == 1
