"""Fixtures of the audit tests: both HTTP apps on a real, migrated database, and a reminder seeder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app, create_notifications_app
from shared.clock import utcnow
from shared.db.tables import Reminder
from shared.db.uow import UnitOfWork
from shared.settings import Settings


@pytest.fixture
def intake(settings: Settings) -> TestClient:
    return TestClient(create_intake_app(), raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def notifications(settings: Settings) -> TestClient:
    return TestClient(create_notifications_app(), raise_server_exceptions=False, follow_redirects=False)


def seed_reminder(settings: Settings, org: str, patient_id: str, kind: str = "pt_follow_up") -> str:
    """A due reminder of an existing patient (as the pathway would have made it)."""
    now = utcnow()
    with UnitOfWork(settings) as uow:
        reminder = Reminder(
            org=org,
            patient_id=patient_id,
            kind=kind,
            due_at=now - timedelta(hours=1),
            status="due",
            text="PT follow-up due: review progress",
            citation="G1",
            fact_ids=[],
            delivered_at=now,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(reminder)
        uow.commit()
        return reminder.id
