"""Helpers for the reminder tests: patients, reminders and tokens in a real (migrated) database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reminder_testkit import T0

from carepath.apps import create_notifications_app as create_app
from shared.auth import create_token
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork
from shared.settings import Settings


@pytest.fixture
def make_patient(settings: Settings) -> Callable[..., str]:
    def make(org: str = "org-a", external_id: str | None = None) -> str:
        with UnitOfWork(settings) as uow:
            patient = Patient(org=org, external_id=external_id or f"MRN-{uuid.uuid4().hex[:10]}", created_at=T0)
            uow.session.add(patient)
            uow.commit()
            return patient.id

    return make


@pytest.fixture
def make_reminder(settings: Settings, make_patient: Callable[..., str]) -> Callable[..., Reminder]:
    def make(
        org: str = "org-a",
        *,
        patient_id: str | None = None,
        kind: str = "pt_follow_up",
        status: str = "scheduled",
        due_at: datetime = T0,
        **fields: Any,
    ) -> Reminder:
        patient_id = patient_id or make_patient(org)
        next_action = {"scheduled": due_at}.get(status)
        with UnitOfWork(settings) as uow:
            reminder = Reminder(
                org=org,
                patient_id=patient_id,
                kind=kind,
                due_at=due_at,
                status=status,
                text="PT follow-up due: review progress",
                citation="G1",
                fact_ids=["f-1"],
                next_action_at=fields.pop("next_action_at", next_action),
                created_at=T0 - timedelta(days=30),
                updated_at=T0 - timedelta(days=30),
                **fields,
            )
            uow.session.add(reminder)
            uow.commit()
            return reminder

    return make


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app())


@pytest.fixture
def auth(settings: Settings) -> Callable[..., dict[str, str]]:
    def headers(org: str = "org-a", role: str = "coordinator") -> dict[str, str]:
        return {"Authorization": f"Bearer {create_token(settings, org, role)}"}

    return headers
