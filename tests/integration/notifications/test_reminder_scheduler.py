"""The scheduler, one pass at a time and as a running loop: delivery through the outbox, escalation,
leases, and timeliness (it sleeps until the next due reminder and can be woken early)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from reminder_testkit import T0, assessed_envelope, deadline, outbox_count, reminders_of
from sqlalchemy import select

from services.notifications import lifecycle, queries
from services.notifications.reconcile import handle_event
from services.notifications.scheduler import act, claim, deliver_due, run_scheduler
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.tables import OutboxMessage
from shared.db.uow import UnitOfWork
from shared.events import REMINDER_DUE, REMINDER_ESCALATED
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS

pytestmark = pytest.mark.integration


def _outbox(settings, event_type):  # type: ignore[no-untyped-def]
    with UnitOfWork(settings, read_only=True) as uow:
        rows = uow.session.execute(select(OutboxMessage).where(OutboxMessage.event_type == event_type)).scalars()
        return [row.envelope for row in rows]


def _get(settings, reminder_id):  # type: ignore[no-untyped-def]
    with UnitOfWork(settings, read_only=True) as uow:
        reminder = queries.get_reminder(uow, "org-a", reminder_id)
        uow.session.expunge(reminder)
        return reminder


def test_delivers_due_reminders_once_through_the_outbox(settings, make_reminder):  # type: ignore[no-untyped-def]
    due = make_reminder(due_at=T0)
    later = make_reminder(due_at=T0 + timedelta(seconds=1))
    counts = deliver_due(settings, T0, worker_id="w1", limit=10)
    assert (counts["claimed"], counts["delivered"]) == (1, 1)
    delivered = _get(settings, due.id)
    assert (delivered.status, delivered.delivered_at, delivered.claimed_by) == ("due", T0, None)
    assert _get(settings, later.id).status == "scheduled"
    assert deliver_due(settings, T0, worker_id="w2", limit=10)["claimed"] == 0
    (envelope,) = _outbox(settings, REMINDER_DUE)
    assert envelope["subject"] == due.patient_id
    assert envelope["data"] == {
        "reminder_id": due.id,
        "org": "org-a",
        "patient_id": due.patient_id,
        "kind": "pt_follow_up",
        "due_at": "2026-03-02T09:00:00Z",
        "delivered_at": "2026-03-02T09:00:00Z",
    }
    with UnitOfWork(settings, read_only=True) as uow:
        history = [(h.from_status, h.to_status, h.actor) for h in queries.history(uow, due.id)]
    assert history == [("scheduled", "due", "scheduler:w1")]


def test_unacknowledged_urgent_reminder_escalates_after_an_hour(settings, make_reminder):  # type: ignore[no-untyped-def]
    urgent = make_reminder(kind="urgent_surgical_referral", due_at=T0)
    deliver_due(settings, T0, worker_id="w", limit=10)
    assert deliver_due(settings, T0 + timedelta(minutes=59), worker_id="w", limit=10)["escalated"] == 0
    assert deliver_due(settings, T0 + timedelta(hours=1), worker_id="w", limit=10)["escalated"] == 1
    assert deliver_due(settings, T0 + timedelta(days=9), worker_id="w", limit=10)["claimed"] == 0
    escalated = _get(settings, urgent.id)
    assert (escalated.status, escalated.escalated_at) == ("due", T0 + timedelta(hours=1))
    (envelope,) = _outbox(settings, REMINDER_ESCALATED)
    assert envelope["data"]["reminder_id"] == urgent.id and envelope["data"]["kind"] == "urgent_surgical_referral"


def test_other_kinds_escalate_after_two_business_days(settings, make_reminder):  # type: ignore[no-untyped-def]
    friday = T0 + timedelta(days=4, hours=6)  # Friday 15:00
    reminder = make_reminder(kind="pdmp_review", due_at=friday)
    deliver_due(settings, friday, worker_id="w", limit=10)
    monday_late = friday + timedelta(days=3, hours=8)
    assert deliver_due(settings, monday_late, worker_id="w", limit=10)["escalated"] == 0
    tuesday = friday + timedelta(days=4)
    assert deliver_due(settings, tuesday, worker_id="w", limit=10)["escalated"] == 1
    assert _get(settings, reminder.id).escalated_at == tuesday


def test_acknowledged_reminder_does_not_escalate(settings, make_reminder):  # type: ignore[no-untyped-def]
    reminder = make_reminder(kind="urgent_surgical_referral", due_at=T0)
    deliver_due(settings, T0, worker_id="w", limit=10)
    with UnitOfWork(settings) as uow:
        lifecycle.acknowledge(uow, Principal("org-a", "coordinator", "bob"), reminder.id, now=T0)
        uow.commit()
    assert deliver_due(settings, T0 + timedelta(days=5), worker_id="w", limit=10)["claimed"] == 0
    assert outbox_count(settings, REMINDER_ESCALATED) == 0


def test_expired_lease_is_taken_over_and_the_late_owner_changes_nothing(settings, make_reminder):  # type: ignore[no-untyped-def]
    reminders = [make_reminder(due_at=T0) for _ in range(3)]
    with UnitOfWork(settings) as uow:
        stale_claim = claim(uow, T0, "dead", 10, lease=5)
        uow.commit()
    assert len(stale_claim) == 3
    assert deliver_due(settings, T0 + timedelta(seconds=4), worker_id="live", limit=10)["claimed"] == 0
    assert deliver_due(settings, T0 + timedelta(seconds=5), worker_id="live", limit=10)["delivered"] == 3
    with UnitOfWork(settings) as uow:  # the first owner wakes up after its lease and tries to finish
        assert act(uow, stale_claim, "dead", T0 + timedelta(seconds=6)) == {
            "delivered": 0,
            "unsnoozed": 0,
            "escalated": 0,
        }
        uow.commit()
    assert outbox_count(settings, REMINDER_DUE) == 3
    assert {_get(settings, r.id).delivered_at for r in reminders} == {T0 + timedelta(seconds=5)}


def test_a_claimed_reminder_completed_meanwhile_is_not_delivered(settings, make_reminder):  # type: ignore[no-untyped-def]
    reminder = make_reminder(due_at=T0)
    with UnitOfWork(settings) as uow:
        claimed = claim(uow, T0, "w", 10, lease=30)
        uow.commit()
    with UnitOfWork(settings) as uow:
        lifecycle.complete(uow, Principal("org-a", "ops", "eve"), reminder.id)
        uow.commit()
    with UnitOfWork(settings) as uow:
        assert act(uow, claimed, "w", T0)["delivered"] == 0
        uow.commit()
    assert _get(settings, reminder.id).status == "completed" and outbox_count(settings, REMINDER_DUE) == 0


def _run(settings, **changes):  # type: ignore[no-untyped-def]
    stop = threading.Event()
    configured = settings.model_copy(update=changes)
    thread = threading.Thread(target=run_scheduler, args=(stop, configured), kwargs={"worker_id": "loop"}, daemon=True)
    thread.start()
    return stop, thread


def test_running_scheduler_delivers_on_time(settings, make_reminder):  # type: ignore[no-untyped-def]
    start = utcnow()
    reminders = [make_reminder(due_at=start + timedelta(seconds=1 + 0.25 * i)) for i in range(6)]
    stop, thread = _run(settings, scheduler_max_sleep=5.0)  # on time by sleeping until due, not by polling
    try:
        deadline_ = time.monotonic() + 10
        while time.monotonic() < deadline_ and outbox_count(settings, REMINDER_DUE) < len(reminders):
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    lateness = [(_get(settings, r.id).delivered_at - r.due_at).total_seconds() for r in reminders]
    # Far below the 5 s sleep cap: it woke for the due time. (The ≤ 1 s p99 goal is measured by
    # bench/bench_scheduler.py, not asserted here, so a loaded CI machine cannot make this flaky.)
    assert all(0 <= late < 3.0 for late in lateness), lateness


def test_a_new_reminder_wakes_the_sleeping_scheduler(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    stop, thread = _run(settings, scheduler_max_sleep=30.0)
    try:
        time.sleep(0.5)  # the scheduler found nothing and went to sleep for up to 30 s
        due_at = utcnow() + timedelta(seconds=1)
        consume(
            NOTIFICATIONS,
            assessed_envelope(patient, 1, [deadline("pt_follow_up", due_at)]),
            None,
            handle_event,
            settings,
        )
        deadline_ = time.monotonic() + 5
        while time.monotonic() < deadline_ and outbox_count(settings, REMINDER_DUE) == 0:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(35)
    (reminder,) = reminders_of(settings, patient)
    assert reminder.status == "due"
    assert (reminder.delivered_at - reminder.due_at).total_seconds() < 3.0  # woken: not the 30 s sleep
