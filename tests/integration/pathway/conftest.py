"""Helpers for the configuration and re-evaluation tests: patients with facts in the real database, the
outbox drained in process (relay -> official in-memory publisher -> pathway consumer), and counts."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.pathway.consumer import handle_event
from services.pathway.handler import evaluate_patient, latest_assessment
from shared.db.tables import Assessment, OutboxMessage, Patient, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_REEVALUATION_REQUESTED
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.messaging.routing import PATHWAY
from shared.settings import Settings


@dataclass
class Kit:
    settings: Settings

    def patients(self, org: str, count: int, *, evaluate: bool = True, presenting: bool = False) -> list[str]:
        """`count` patients with one surgery fact each (and, `presenting`, a pain assessment 2 days later: the
        initial evaluation is then pending), evaluated once under the current configuration."""
        surgery_at = datetime.now(UTC) - timedelta(days=30)
        with UnitOfWork(self.settings) as uow:
            ids = []
            for _ in range(count):
                patient = Patient(org=org, external_id=f"MRN-{uuid.uuid4().hex[:12]}", created_at=surgery_at)
                uow.session.add(patient)
                uow.session.flush()
                uow.session.add(
                    PatientUpdate(
                        patient_id=patient.id,
                        org=org,
                        type="surgery",
                        occurred_at=surgery_at,
                        occurred_at_text=surgery_at.isoformat(),
                        data={"procedure": "laminectomy"},
                        received_at=surgery_at,
                    )
                )
                if presenting:
                    pain_at = surgery_at + timedelta(days=2)
                    uow.session.add(
                        PatientUpdate(
                            patient_id=patient.id,
                            org=org,
                            type="pain_assessment",
                            occurred_at=pain_at,
                            occurred_at_text=pain_at.isoformat(),
                            data={"pain_nrs": 6, "distribution": "axial"},
                            received_at=pain_at,
                        )
                    )
                ids.append(patient.id)
            uow.session.flush()
            if evaluate:
                for patient_id in ids:
                    evaluate_patient(uow, patient_id, "update")
            uow.commit()
        return ids

    def drain(self) -> int:
        """Publish every pending outbox row and run the pathway consumer on its events; returns how many
        pathway events were handled (other consumers' rows are left to their own tests)."""
        handled = 0
        publisher = InMemoryPublisher()
        while relay_once(publisher, self.settings):
            for consumer, envelope, outbox_id in publisher.drain():
                if consumer == PATHWAY:
                    consume(consumer, envelope, outbox_id, handle_event, self.settings)
                    handled += 1
        return handled

    def reevaluation_events(self) -> Counter[str]:
        """Queued re-evaluation events per patient id (all runs, handled or not)."""
        query = select(OutboxMessage.envelope).where(OutboxMessage.event_type == PATHWAY_REEVALUATION_REQUESTED)
        with UnitOfWork(self.settings, read_only=True) as uow:
            return Counter(envelope["subject"] for envelope in uow.session.execute(query).scalars())

    def latest(self, patient_id: str) -> Assessment:
        with UnitOfWork(self.settings, read_only=True) as uow:
            assessment = latest_assessment(uow, patient_id)
            assert assessment is not None
            uow.session.expunge(assessment)
        return assessment

    def assessment_count(self, patient_id: str) -> int:
        with UnitOfWork(self.settings, read_only=True) as uow:
            rows = uow.session.execute(select(Assessment.id).where(Assessment.patient_id == patient_id)).all()
        return len(rows)


@pytest.fixture
def kit(settings: Settings) -> Kit:
    return Kit(settings)
