"""Seeding through the real API for the workspace tests: patients and updates posted to the intake app, the
outbox drained in process (relay -> in-memory publisher -> the pathway and notifications consumers), and one
scheduler pass so reminders whose time has come are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from carepath.apps import create_intake_app
from services.notifications.reconcile import handle_event as reconcile_event
from services.notifications.scheduler import deliver_due
from services.pathway.consumer import handle_event as pathway_event
from shared.auth import create_token
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.messaging.routing import NOTIFICATIONS, PATHWAY
from shared.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def u(type_: str, days_ago: float, **data: Any) -> dict[str, Any]:
    return {"type": type_, "occurred_at": ago(days_ago), "data": data}


class Intake:
    def __init__(self, settings: Settings, org: str = "org-a") -> None:
        self.settings = settings
        self.client = TestClient(create_intake_app())
        self.headers = {"Authorization": f"Bearer {create_token(settings, org, 'client')}"}

    def patient(self, mrn: str, updates: list[dict[str, Any]]) -> str:
        created = self.client.post("/v1/patients", json={"external_id": mrn}, headers=self.headers)
        assert created.status_code == 201, created.text
        patient_id = str(created.json()["id"])
        if updates:
            posted = self.client.post(
                f"/v1/patients/{patient_id}/updates:batch", json={"updates": updates}, headers=self.headers
            )
            assert posted.status_code == 202, posted.text
        return patient_id

    def drain(self) -> None:
        publisher = InMemoryPublisher()
        while relay_once(publisher, self.settings):
            for consumer, envelope, outbox_id in publisher.drain():
                if consumer == PATHWAY:
                    consume(consumer, envelope, outbox_id, pathway_event, self.settings)
                elif consumer == NOTIFICATIONS:
                    consume(consumer, envelope, outbox_id, reconcile_event, self.settings)
        while deliver_due(self.settings, worker_id="test", limit=500).get("claimed", 0):
            pass
