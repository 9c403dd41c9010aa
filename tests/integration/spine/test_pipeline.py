"""Outbox → relay → consumers, in process against the real database (the broker replaced by the official
in-memory publisher, so deliveries can be duplicated, dropped and reordered at will)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carepath.apps import create_intake_app as create_app
from services.notifications.reconcile import handle_event as reconcile
from services.pathway.consumer import handle_event as evaluate_event
from shared.auth import create_token
from shared.db.tables import Assessment, OutboxMessage, ProcessedEvent, Reminder
from shared.db.tables.reminders import ACTIVE_STATUSES
from shared.db.uow import UnitOfWork
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.settings import Settings

pytestmark = pytest.mark.integration
HANDLERS = {"pathway": evaluate_event, "notifications": reconcile}


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def _count(settings: Settings, table, *where) -> int:  # type: ignore[no-untyped-def]
    with UnitOfWork(settings, read_only=True) as uow:
        return uow.session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.fixture
def patient(settings: Settings) -> tuple[TestClient, dict[str, str], str]:
    client = TestClient(create_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    patient_id = client.post("/v1/patients", json={"external_id": "MRN-1"}, headers=headers).json()["id"]
    updates = [
        {"type": "surgery", "occurred_at": _at(60), "data": {"procedure": "laminectomy"}},
        {"type": "medication", "occurred_at": _at(35), "data": {"drug_class": "opioid_ir", "action": "started"}},
    ]
    assert (
        client.post(f"/v1/patients/{patient_id}/updates:batch", json={"updates": updates}, headers=headers).status_code
        == 202
    )
    return client, headers, patient_id


def _deliver(settings: Settings, publisher: InMemoryPublisher, copies: int = 1) -> list[str]:
    results = []
    for consumer, envelope, outbox_id in publisher.drain():
        for _ in range(copies):
            results.append(consume(consumer, envelope, outbox_id, HANDLERS[consumer], settings))
    return results


def test_event_delivered_twice_changes_the_assessment_once_and_makes_one_reminder(settings: Settings, patient) -> None:
    _, _, patient_id = patient
    publisher = InMemoryPublisher()
    assert relay_once(publisher, settings) == 1
    assert _deliver(settings, publisher, copies=2) == ["handled", "duplicate"]
    assert _count(settings, Assessment, Assessment.patient_id == patient_id) == 1
    assert relay_once(publisher, settings) == 1  # the assessed event, once
    assert _deliver(settings, publisher, copies=2) == ["handled", "duplicate"]
    assert _count(settings, Reminder, Reminder.patient_id == patient_id, Reminder.kind == "opioid_review_4w") == 1
    assert _count(settings, OutboxMessage, OutboxMessage.done_at.is_(None)) == 0


def test_concurrent_duplicate_deliveries_are_handled_once(settings: Settings, patient) -> None:
    _, _, patient_id = patient
    publisher = InMemoryPublisher()
    relay_once(publisher, settings)
    [(consumer, envelope, outbox_id)] = publisher.drain()
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(consume(consumer, envelope, outbox_id, evaluate_event, settings))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate"] * 3 + ["handled"]
    assert _count(settings, Assessment, Assessment.patient_id == patient_id) == 1
    assert _count(settings, ProcessedEvent) == 1


def test_lost_message_is_republished_after_the_lease(settings: Settings, patient) -> None:
    _, _, patient_id = patient
    publisher = InMemoryPublisher()
    assert relay_once(publisher, settings) == 1
    publisher.drain()  # the broker lost it (a killed worker on a serverless transport)
    assert relay_once(publisher, settings) == 0  # leased: not republished at once
    with UnitOfWork(settings) as uow:  # let the lease run out
        uow.session.execute(OutboxMessage.__table__.update().values(available_at=datetime.now(UTC)))
        uow.commit()
    assert relay_once(publisher, settings) == 1
    assert _deliver(settings, publisher) == ["handled"]
    assert _count(settings, Assessment, Assessment.patient_id == patient_id) == 1


class _RefusingPublisher:
    """A broker that refuses every message (down, or its disk full)."""

    def publish(self, consumer: str, envelope: dict, outbox_id: int) -> None:  # type: ignore[type-arg]
        raise OSError(28, "No space left on device")


def test_refused_publishes_do_not_lengthen_the_lease_of_the_next_delivery(settings: Settings, patient) -> None:
    # Found by fault scenario 7 (disk full): every refused publish counted as a delivery attempt, so after a
    # few seconds of outage the next real delivery was leased for 16 leases (8 min) instead of one.
    for _ in range(6):
        assert relay_once(_RefusingPublisher(), settings) == 0
        with UnitOfWork(settings) as uow:  # the 2 s retry delay passes
            uow.session.execute(OutboxMessage.__table__.update().values(available_at=datetime.now(UTC)))
            uow.commit()
    publisher = InMemoryPublisher()
    before = datetime.now(UTC)
    assert relay_once(publisher, settings) == 1
    with UnitOfWork(settings, read_only=True) as uow:
        attempts, available_at = uow.session.execute(select(OutboxMessage.attempts, OutboxMessage.available_at)).one()
    assert attempts == 1
    assert available_at.replace(tzinfo=UTC) <= before + timedelta(seconds=settings.relay_lease_seconds + 5)


def test_stale_assessed_event_does_not_undo_a_newer_one(settings: Settings, patient) -> None:
    client, headers, patient_id = patient
    publisher = InMemoryPublisher()
    relay_once(publisher, settings)
    _deliver(settings, publisher)
    relay_once(publisher, settings)
    [older] = publisher.drain()  # assessment 1: opioid review pending
    stop = {"type": "medication", "occurred_at": _at(34), "data": {"drug_class": "opioid_ir", "action": "stopped"}}
    client.post(f"/v1/patients/{patient_id}/updates", json=stop, headers=headers)
    relay_once(publisher, settings)
    _deliver(settings, publisher)
    relay_once(publisher, settings)
    _deliver(settings, publisher)  # assessment 2 reconciled: the review is cancelled
    consume(older[0], older[1], older[2], reconcile, settings)  # the old event arrives late
    with UnitOfWork(settings, read_only=True) as uow:
        statuses = (
            uow.session.execute(
                select(Reminder.status).where(Reminder.patient_id == patient_id, Reminder.kind == "opioid_review_4w")
            )
            .scalars()
            .all()
        )
    assert not set(statuses) & set(ACTIVE_STATUSES), statuses  # the late, older event revived nothing


def test_migrations_match_the_models(settings: Settings) -> None:
    from shared.db.schema import check

    check(settings.effective_database_url)  # raises if models and migrations drift


def test_future_fact_takes_effect_through_the_timed_reevaluation_sweep(settings: Settings, patient) -> None:
    from services.pathway.scheduling import request_due_reevaluations
    from shared.db.tables import Patient

    client, headers, patient_id = patient
    takes_effect = datetime.now(UTC) + timedelta(hours=2)
    exam = {"type": "neuro_exam", "occurred_at": takes_effect.isoformat(), "data": {"progressive_deficit": True}}
    assert client.post(f"/v1/patients/{patient_id}/updates", json=exam, headers=headers).status_code == 202
    publisher = InMemoryPublisher()
    relay_once(publisher, settings)
    _deliver(settings, publisher)
    pathway = client.get(f"/v1/patients/{patient_id}/pathway", headers=headers).json()
    assert pathway["updates_evaluated"] == 3 and pathway["stage"] != "urgent_surgical_evaluation"
    assert datetime.fromisoformat(pathway["next_evaluation_at"]) == takes_effect

    with UnitOfWork(settings) as uow:  # not yet due: nothing is claimed
        assert request_due_reevaluations(uow, takes_effect - timedelta(seconds=1), 100) == 0
        uow.commit()
    with UnitOfWork(settings) as uow:
        assert request_due_reevaluations(uow, takes_effect, 100) == 1
        uow.commit()
    with UnitOfWork(settings) as uow:
        assert uow.session.get(Patient, patient_id).next_evaluation_at is None  # claimed once
        assert request_due_reevaluations(uow, takes_effect, 100) == 0
    relay_once(publisher, settings)  # the pending notifications event and the re-evaluation request
    [reevaluation] = [sent for sent in publisher.drain() if sent[0] == "pathway"]
    assert reevaluation[1]["type"] == "carepath.pathway.reevaluation_requested"
    assert reevaluation[1]["subject"] == patient_id


def test_sql_errors_never_carry_the_values_into_logs(settings: Settings, patient) -> None:
    from sqlalchemy.exc import IntegrityError

    from shared.clock import utcnow
    from shared.db.tables import Patient

    _, _, patient_id = patient
    with UnitOfWork(settings) as uow:
        uow.session.add(Patient(id=patient_id, org="org-a", external_id="MRN-SECRET-7", created_at=utcnow()))
        with pytest.raises(IntegrityError) as raised:
            uow.session.flush()
    assert "MRN-SECRET-7" not in str(raised.value)


def test_several_relays_share_the_outbox_without_publishing_a_row_twice(settings: Settings) -> None:
    from shared.events import PATIENT_UPDATED, SOURCE_INTAKE, Event

    with UnitOfWork(settings) as uow:
        for n in range(300):
            uow.publish(Event(type=PATIENT_UPDATED, source=SOURCE_INTAKE, subject=f"p{n}", data={}))
        uow.commit()
    publishers = [InMemoryPublisher() for _ in range(3)]
    threads = [threading.Thread(target=lambda p=p: [relay_once(p, settings) for _ in range(5)]) for p in publishers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    published = [outbox_id for p in publishers for _, _, outbox_id in p.sent]
    assert len(published) == len(set(published)) == 300


def test_prune_deletes_only_old_finished_rows(settings: Settings, patient) -> None:
    from shared.messaging.relay import prune

    publisher = InMemoryPublisher()
    relay_once(publisher, settings)
    _deliver(settings, publisher)  # outbox row finished, one processed_event
    relay_once(publisher, settings)  # the assessed event: published, not yet finished
    later = datetime.now(UTC) + timedelta(days=settings.outbox_retention_days, seconds=1)
    with UnitOfWork(settings) as uow:
        assert prune(uow, later, settings) == (1, 0)
        uow.commit()
    assert _count(settings, OutboxMessage) == 1  # the unfinished one stays, whatever its age
    assert _count(settings, ProcessedEvent) == 1
    much_later = datetime.now(UTC) + timedelta(days=settings.dedupe_retention_days, seconds=1)
    with UnitOfWork(settings) as uow:
        assert prune(uow, much_later, settings) == (0, 1)
        uow.commit()
