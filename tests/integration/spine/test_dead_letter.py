"""Poison messages: parked after `dead_letter_after` failures (malformed and unknown-type ones at once), their
outbox row finished so the relay stops, visible in /metrics, and `carepath events retry` replays them.
Transient database errors are never counted."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from carepath.apps import create_notifications_app
from carepath.cli import main
from shared.db.tables import DeadLetter, OutboxMessage, ProcessedEvent
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, PATIENT_UPDATED, SOURCE_INTAKE, Event
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS, PATHWAY
from shared.settings import Settings


def _outbox(event: Event, consumer: str) -> int:
    with UnitOfWork() as uow:
        uow.publish(event)
        uow.commit()
        row = uow.session.execute(
            select(OutboxMessage).where(OutboxMessage.event_id == event.id, OutboxMessage.consumer == consumer)
        ).scalar_one()
        assert row.id is not None
        return row.id


def _row(outbox_id: int) -> OutboxMessage:
    with UnitOfWork(read_only=True) as uow:
        row = uow.session.get(OutboxMessage, outbox_id)
        assert row is not None
        uow.session.expunge(row)  # read after the unit of work ends
        return row


def _dead_letters() -> list[DeadLetter]:
    with UnitOfWork(read_only=True) as uow:
        rows = list(uow.session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars())
        uow.session.expunge_all()
        return rows


def _failing(_: UnitOfWork, __: Event) -> None:
    raise KeyError("deadlines")


@pytest.fixture
def poisoned(settings: Settings) -> tuple[Event, int]:
    event = Event(PATIENT_UPDATED, SOURCE_INTAKE, "patient-1", {"update_ids": ["u1"]})
    return event, _outbox(event, PATHWAY)


def test_a_handler_failing_every_time_is_parked_after_n_attempts(
    settings: Settings, poisoned: tuple[Event, int], capsys: pytest.CaptureFixture[str]
) -> None:
    event, outbox_id = poisoned
    envelope = _row(outbox_id).envelope
    for _ in range(settings.dead_letter_after - 1):
        with pytest.raises(KeyError):
            consume(PATHWAY, envelope, outbox_id, _failing)
        assert _row(outbox_id).done_at is None  # still the relay's to deliver again
    assert consume(PATHWAY, envelope, outbox_id, _failing) == "parked"
    assert _row(outbox_id).done_at is not None
    [parked] = _dead_letters()
    assert (parked.consumer, parked.event_key, parked.attempts, parked.reason) == (
        PATHWAY,
        event.id,
        settings.dead_letter_after,
        "handler_failed",
    )
    assert parked.error.startswith("KeyError")
    metrics = TestClient(create_notifications_app()).get("/metrics").text
    assert 'carepath_parked_events{consumer="pathway"} 1.0' in metrics
    assert 'carepath_parked_events{consumer="notifications"} 0.0' in metrics

    assert main(["events", "list"]) == 0
    assert event.id in capsys.readouterr().out
    assert main(["events", "retry", str(parked.id)]) == 0
    replayed = _row(outbox_id)
    assert replayed.done_at is None and replayed.attempts == 0
    handled: list[str] = []
    assert consume(PATHWAY, envelope, outbox_id, lambda _uow, e: handled.append(e.id)) == "handled"
    assert handled == [event.id] and _row(outbox_id).done_at is not None
    metrics = TestClient(create_notifications_app()).get("/metrics").text
    assert 'carepath_parked_events{consumer="pathway"} 0.0' in metrics
    assert main(["events", "retry", str(parked.id)]) == 1  # no longer parked


def test_malformed_and_unknown_type_messages_are_parked_at_once(settings: Settings) -> None:
    garbage: dict[str, Any] = {"not": "a cloud event"}
    assert consume(PATHWAY, garbage, None, _failing) == "parked"
    stray = Event(PATHWAY_ASSESSED, "carepath/pathway", "patient-2", {})  # routed to notifications only
    outbox_id = _outbox(stray, NOTIFICATIONS)
    assert consume(PATHWAY, _row(outbox_id).envelope, None, _failing) == "parked"
    # copies of an already parked message (the relay republished it meanwhile) are no new failures
    assert consume(PATHWAY, garbage, None, _failing) == "parked"
    assert consume(PATHWAY, _row(outbox_id).envelope, None, _failing) == "parked"
    reasons = [(row.reason, row.attempts) for row in _dead_letters()]
    assert reasons == [("malformed", 1), ("unknown_type", 1)]
    malformed = _dead_letters()[0]
    assert main(["events", "retry", str(malformed.id)]) == 2  # nothing of ours to replay
    with UnitOfWork(read_only=True) as uow:
        assert uow.session.execute(select(ProcessedEvent)).first() is None


def test_transient_database_errors_are_never_counted(settings: Settings, poisoned: tuple[Event, int]) -> None:
    _, outbox_id = poisoned

    def database_gone(_: UnitOfWork, __: Event) -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    for _ in range(settings.dead_letter_after + 2):
        with pytest.raises(OperationalError):
            consume(PATHWAY, _row(outbox_id).envelope, outbox_id, database_gone)
    assert _dead_letters() == []
    assert _row(outbox_id).done_at is None
