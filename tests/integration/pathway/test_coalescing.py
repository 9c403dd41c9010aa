"""Coalesced evaluation (services/pathway/coalescing.py): several queued update events of one patient need one
evaluation, with the same final assessment as evaluating them one by one, and safely when two workers take
events of the same patient at once. Real database (both backends), relay -> in-memory publisher -> consumer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from carepath.apps import create_intake_app
from services.pathway.consumer import handle_event
from services.pathway.handler import latest_assessment
from shared.auth import create_token
from shared.db.tables import Assessment, OutboxMessage, PatientUpdate, ProcessedEvent, table_of
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.messaging.routing import PATHWAY
from shared.settings import Settings

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def _at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


HISTORY = [
    {"type": "surgery", "occurred_at": _at(60), "data": {"procedure": "laminectomy"}},
    {"type": "pain_assessment", "occurred_at": _at(50), "data": {"pain_nrs": 7, "distribution": "radicular"}},
    {"type": "neuro_exam", "occurred_at": _at(48), "data": {"progressive_deficit": False}},
    {"type": "medication", "occurred_at": _at(45), "data": {"drug_class": "nsaid", "action": "started"}},
    {"type": "medication", "occurred_at": _at(35), "data": {"drug_class": "opioid_ir", "action": "started"}},
]


def _evaluations() -> float:
    return REGISTRY.get_sample_value("carepath_pathway_evaluations_total", {"trigger": "update"}) or 0.0


def _coalesced() -> float:
    return REGISTRY.get_sample_value("carepath_updates_coalesced_total") or 0.0


class Intake:
    def __init__(self, settings: Settings) -> None:
        self.client = TestClient(create_intake_app())
        self.headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}

    def patient(self, mrn: str) -> str:
        answer = self.client.post("/v1/patients", json={"external_id": mrn}, headers=self.headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def post(self, patient_id: str, update: dict[str, Any]) -> None:
        answer = self.client.post(f"/v1/patients/{patient_id}/updates", json=update, headers=self.headers)
        assert answer.status_code == 202, answer.text


def _pathway_messages(publisher: InMemoryPublisher) -> list[tuple[str, dict[str, Any], int]]:
    return [message for message in publisher.drain() if message[0] == PATHWAY]


def _every_pending(settings: Settings) -> list[tuple[str, dict[str, Any], int]]:
    """Every unfinished pathway row as a delivery: what racing relays or run-out leases can deliver at once
    (one relay defers a patient's later update rows: tests/integration/pathway/test_deferral.py)."""
    table = table_of(OutboxMessage)
    query = select(table.c.consumer, table.c.envelope, table.c.id).where(
        table.c.consumer == PATHWAY, table.c.done_at.is_(None)
    )
    with UnitOfWork(settings, read_only=True) as uow:
        return [(row.consumer, row.envelope, row.id) for row in uow.session.execute(query.order_by(table.c.id))]


def _deliver(settings: Settings, messages: list[tuple[str, dict[str, Any], int]]) -> list[str]:
    return [
        consume(consumer, envelope, outbox_id, handle_event, settings) for consumer, envelope, outbox_id in messages
    ]


def _shown(settings: Settings, patient_id: str) -> dict[str, Any]:
    """The assessment as it matters (without the patient's own fact ids and the evaluation instant)."""
    with UnitOfWork(settings, read_only=True) as uow:
        assessment = latest_assessment(uow, patient_id)
        assert assessment is not None
        body = assessment.body
    return {
        "stage": body["stage"],
        "flags": sorted(flag["code"] for flag in body["flags"]),
        "deadlines": sorted((d["kind"], d["due_at"], d["status"]) for d in body["deadlines"]),
        "updates_evaluated": body["updates_evaluated"],
    }


def _count(settings: Settings, table: Any, *where: Any) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_queued_updates_of_one_patient_need_one_evaluation_and_match_one_by_one(settings: Settings) -> None:
    intake = Intake(settings)
    publisher = InMemoryPublisher()
    # one by one: each update evaluated before the next arrives
    alone = intake.patient("MRN-ALONE")
    before = _evaluations()
    for update in HISTORY:
        intake.post(alone, update)
        relay_once(publisher, settings)
        assert _deliver(settings, _pathway_messages(publisher)) == ["handled"]
    assert _evaluations() - before == len(HISTORY)
    # queued (a backlog): five events published before any is consumed
    queued = intake.patient("MRN-QUEUED")
    for update in HISTORY:
        intake.post(queued, update)
    relay_once(publisher, settings)
    assert len(_pathway_messages(publisher)) == 1  # the relay defers the rest (covered by this one)
    messages = _every_pending(settings)
    assert len(messages) == len(HISTORY)
    before, coalesced_before = _evaluations(), _coalesced()
    # every event recorded as processed: by its own delivery, or (SQLite) by the evaluation that covered it
    results = _deliver(settings, messages)
    assert results[0] == "handled" and set(results[1:]) <= {"handled", "duplicate"}
    assert _evaluations() - before == 1
    assert _coalesced() - coalesced_before == len(HISTORY) - 1
    assert _shown(settings, queued) == _shown(settings, alone)
    assert _shown(settings, queued)["updates_evaluated"] == len(HISTORY)
    assert _count(settings, ProcessedEvent, ProcessedEvent.consumer == PATHWAY) == 2 * len(HISTORY)
    assert _count(settings, OutboxMessage, OutboxMessage.done_at.is_(None), OutboxMessage.consumer == PATHWAY) == 0
    # one assessment (and one assessed event) for the queued patient, not five
    assert _count(settings, Assessment, Assessment.patient_id == queued) == 1
    relay_once(publisher, settings)
    assessed = [m for m in publisher.drain() if m[1]["type"] == PATHWAY_ASSESSED and m[1]["subject"] == queued]
    assert len(assessed) == 1


def test_updates_not_yet_published_are_covered_and_never_published(settings: Settings) -> None:
    intake = Intake(settings)
    publisher = InMemoryPublisher()
    patient_id = intake.patient("MRN-BACKLOG")
    intake.post(patient_id, HISTORY[0])
    relay_once(publisher, settings)
    first = _pathway_messages(publisher)
    for update in HISTORY[1:]:  # stored after the first event was published, before it is consumed
        intake.post(patient_id, update)
    before = _evaluations()
    assert _deliver(settings, first) == ["handled"]
    assert _evaluations() - before == 1
    assert _shown(settings, patient_id)["updates_evaluated"] == len(HISTORY)  # the evaluation saw all five
    relay_once(publisher, settings)
    assert _pathway_messages(publisher) == []  # covered: nothing left to publish for the pathway
    assert _count(settings, OutboxMessage, OutboxMessage.done_at.is_(None), OutboxMessage.consumer == PATHWAY) == 0


@pytest.mark.parametrize("round_", range(3))
def test_two_workers_on_one_patient_at_once(settings: Settings, round_: int) -> None:
    intake = Intake(settings)
    publisher = InMemoryPublisher()
    patient_id = intake.patient(f"MRN-RACE-{round_}")
    for update in HISTORY:
        intake.post(patient_id, update)
    messages = _every_pending(settings)
    halves = [messages[0::2], messages[1::2]]
    start = threading.Barrier(2)
    results: list[str] = []
    failures: list[BaseException] = []

    def worker(share: list[tuple[str, dict[str, Any], int]]) -> None:
        start.wait()
        try:
            results.extend(_deliver(settings, share))
        except BaseException as failure:
            failures.append(failure)

    before = _evaluations()
    threads = [threading.Thread(target=worker, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert len(results) == len(HISTORY) and set(results) <= {"handled", "duplicate"} and "handled" in results
    assert 1 <= _evaluations() - before <= 2
    with UnitOfWork(settings, read_only=True) as uow:
        updates = uow.session.execute(
            select(func.count()).select_from(PatientUpdate).where(PatientUpdate.patient_id == patient_id)
        ).scalar_one()
    assert _shown(settings, patient_id)["updates_evaluated"] == updates == len(HISTORY)
    assert _count(settings, ProcessedEvent, ProcessedEvent.consumer == PATHWAY) == len(HISTORY)
    assert _count(settings, OutboxMessage, OutboxMessage.done_at.is_(None), OutboxMessage.consumer == PATHWAY) == 0
    relay_once(publisher, settings)
    assessed = [m for m in publisher.drain() if m[1]["type"] == PATHWAY_ASSESSED]
    assert len(assessed) == _count(settings, Assessment, Assessment.patient_id == patient_id) <= 2
