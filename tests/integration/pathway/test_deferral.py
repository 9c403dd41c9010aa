"""The relay defers a pathway update event that an evaluation already queued will cover
(shared/messaging/relay.py _covered_later): a covered row is never published, a row committed after the
covering evaluation read the facts is published once that evaluation committed, and a worker that dies
mid-evaluation leaves the lease to republish; every update is evaluated. Real database (both backends)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from services.pathway.consumer import handle_event
from shared.db.tables import Assessment, OutboxMessage, table_of
from shared.db.uow import UnitOfWork
from shared.events import Event
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.messaging.routing import PATHWAY
from shared.settings import Settings
from tests.integration.pathway.test_coalescing import HISTORY, Intake, _pathway_messages, _shown

pytestmark = pytest.mark.integration
Message = tuple[str, dict[str, Any], int]


class Killed(BaseException):
    """The worker process dies: not an exception a consumer handles (its transaction is rolled back)."""


def _pending(settings: Settings) -> list[tuple[int, bool]]:
    """(outbox id, ever published) of the unfinished pathway rows."""
    table = table_of(OutboxMessage)
    query = select(table.c.id, table.c.published_at).where(table.c.consumer == PATHWAY, table.c.done_at.is_(None))
    with UnitOfWork(settings, read_only=True) as uow:
        return [(row.id, row.published_at is not None) for row in uow.session.execute(query.order_by(table.c.id))]


def _never_published(settings: Settings) -> int:
    table = table_of(OutboxMessage)
    query = select(func.count()).where(table.c.consumer == PATHWAY, table.c.published_at.is_(None))
    with UnitOfWork(settings, read_only=True) as uow:
        return int(uow.session.execute(query).scalar_one())


def _assessments(settings: Settings, patient_id: str) -> int:
    query = select(func.count()).select_from(Assessment).where(Assessment.patient_id == patient_id)
    with UnitOfWork(settings, read_only=True) as uow:
        return int(uow.session.execute(query).scalar_one())


def _relay(settings: Settings) -> list[Message]:
    publisher = InMemoryPublisher()
    relay_once(publisher, settings)
    return _pathway_messages(publisher)


def test_one_row_per_patient_is_published_and_the_covered_rows_never(settings: Settings) -> None:
    intake = Intake(settings)
    first, second = intake.patient("MRN-DEFER-1"), intake.patient("MRN-DEFER-2")
    for update in HISTORY:
        intake.post(first, update)
        intake.post(second, update)
    messages = _relay(settings)
    assert sorted(envelope["subject"] for _, envelope, _ in messages) == sorted([first, second])
    assert _relay(settings) == []  # the later rows wait for the evaluations in flight
    results = [consume(c, e, i, handle_event, settings) for c, e, i in messages]
    assert results == ["handled", "handled"]
    assert _relay(settings) == []
    assert _pending(settings) == []
    assert _never_published(settings) == 2 * (len(HISTORY) - 1)
    for patient_id in (first, second):
        assert _shown(settings, patient_id)["updates_evaluated"] == len(HISTORY)
        assert _assessments(settings, patient_id) == 1


def test_a_row_committed_after_the_evaluation_read_the_facts_is_published_after_it(settings: Settings) -> None:
    intake = Intake(settings)
    patient_id = intake.patient("MRN-DEFER-LATE")
    intake.post(patient_id, HISTORY[0])
    (message,) = _relay(settings)
    intake.post(patient_id, HISTORY[1])  # stored before the evaluation: covered by it
    late = threading.Thread(target=intake.post, args=(patient_id, HISTORY[2]))
    seen_in_flight: list[list[Message]] = []

    def evaluate_then_race(uow: UnitOfWork, event: Event) -> None:
        handle_event(uow, event)  # the facts are read; the third update arrives now
        late.start()
        late.join(0.3)  # waits for the patient's lock (PostgreSQL) or the write lock (SQLite)
        if not uow.is_sqlite:  # a relay pass while this evaluation is uncommitted (SQLite: it would wait)
            seen_in_flight.append(_relay(settings))

    assert consume(*message, evaluate_then_race, settings) == "handled"
    late.join()
    assert seen_in_flight in ([], [[]])  # nothing published while the covering evaluation was in flight
    assert _shown(settings, patient_id)["updates_evaluated"] == 2
    assert len(_pending(settings)) == 1  # the late update: not covered, still to be published
    (again,) = _relay(settings)
    assert again[1]["subject"] == patient_id
    assert consume(*again, handle_event, settings) == "handled"
    assert _pending(settings) == [] and _relay(settings) == []
    assert _shown(settings, patient_id)["updates_evaluated"] == 3
    assert _assessments(settings, patient_id) == 2
    assert _never_published(settings) == 1  # the second update's row


def test_a_worker_that_dies_mid_evaluation_leaves_it_to_the_lease(settings: Settings) -> None:
    settings = settings.model_copy(update={"relay_lease_seconds": 1.0})
    intake = Intake(settings)
    patient_id = intake.patient("MRN-DEFER-KILLED")
    intake.post(patient_id, HISTORY[0])
    (message,) = _relay(settings)
    leased_until = time.monotonic() + settings.relay_lease_seconds
    for update in HISTORY[1:3]:
        intake.post(patient_id, update)

    def evaluate_then_die(uow: UnitOfWork, event: Event) -> None:
        handle_event(uow, event)
        raise Killed

    with pytest.raises(Killed):
        consume(*message, evaluate_then_die, settings)
    assert [published for _, published in _pending(settings)] == [True, False, False]
    if time.monotonic() < leased_until - 0.2:
        assert _relay(settings) == []  # leased, and the later rows deferred behind it
    time.sleep(max(leased_until - time.monotonic(), 0) + 0.1)
    (again,) = _relay(settings)  # the lease ran out: the first row again, the others still deferred
    assert again[2] == message[2]
    assert consume(*again, handle_event, settings) == "handled"
    assert _pending(settings) == [] and _relay(settings) == []
    assert _shown(settings, patient_id)["updates_evaluated"] == 3
    assert _assessments(settings, patient_id) == 1
