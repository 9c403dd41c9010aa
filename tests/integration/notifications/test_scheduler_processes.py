"""Three scheduler processes against one PostgreSQL database, 10,000 reminders due at once: every reminder
is delivered exactly once, and a scheduler SIGKILLed mid-batch loses nothing (its lease runs out and the
others take its claim over)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, text

from services.notifications.reconcile import handle_event
from shared.clock import isoformat, utcnow
from shared.db.schema import upgrade
from shared.db.tables import OutboxMessage, Patient, Reminder, ReminderTransition
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, REMINDER_DUE, SOURCE_PATHWAY, Event, to_envelope
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS
from shared.testing import fresh_postgres_database, test_backend

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(test_backend() != "pg", reason="several schedulers need PostgreSQL"),
    pytest.mark.timeout(120),
]
CHILD = Path(__file__).with_name("scheduler_child.py")
PATIENTS, KINDS = 1000, 10
TOTAL = PATIENTS * KINDS
LEASE_SECONDS = 3.0


def _seed(url: str, due_at: datetime) -> None:
    engine = create_engine(url)
    patients = [
        {"id": f"p-{i:05d}", "org": "org-a", "external_id": f"x{i}", "created_at": due_at} for i in range(PATIENTS)
    ]
    reminders = [
        {
            "id": f"r-{i:05d}-{k}",
            "org": "org-a",
            "patient_id": f"p-{i:05d}",
            "kind": f"kind_{k}",
            "due_at": due_at,
            "status": "scheduled",
            "text": "t",
            "citation": "G1",
            "fact_ids": [],
            "next_action_at": due_at,
            "created_at": due_at,
            "updated_at": due_at,
            "version": 1,
        }
        for i in range(PATIENTS)
        for k in range(KINDS)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Patient.__table__), patients)
        connection.execute(insert(Reminder.__table__), reminders)
    engine.dispose()


def _start(url: str, worker: str, var_dir: Path, **extra: str) -> subprocess.Popen[str]:
    env = {
        **extra,
        **os.environ,
        "CAREPATH_DATABASE_URL": url,
        "CAREPATH_VAR_DIR": str(var_dir),
        "CAREPATH_SCHEDULER_BATCH": "500",
        "CAREPATH_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, str(CHILD), worker, str(LEASE_SECONDS)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )


def _scalar(engine, statement):  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return connection.execute(statement).scalar_one()


def _kill_mid_batch(engine, victim: subprocess.Popen[str], worker: str) -> dict[str, datetime]:  # type: ignore[no-untyped-def]
    """SIGKILL the victim while it holds claimed, undelivered reminders; returns them with their lease end."""
    held = (
        select(func.count()).select_from(Reminder).where(Reminder.claimed_by == worker, Reminder.status == "scheduled")
    )
    stranded = select(Reminder.id, Reminder.claim_expires_at).where(
        Reminder.claimed_by == worker, Reminder.status == "scheduled"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _scalar(engine, held) > 0:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            time.sleep(0.5)  # PostgreSQL notices the dead connection and rolls its transaction back
            with engine.connect() as connection:
                return {row.id: row.claim_expires_at for row in connection.execute(stranded)}
        time.sleep(0.005)
    raise AssertionError("the victim never held a claim")


def test_three_schedulers_deliver_each_reminder_exactly_once_despite_a_kill(tmp_path):  # type: ignore[no-untyped-def]
    with fresh_postgres_database() as url:
        upgrade(url)
        due_at = utcnow().replace(microsecond=0) + timedelta(seconds=3)
        _seed(url, due_at)
        workers = ["victim", "s2", "s3"]
        processes = {w: _start(url, w, tmp_path) for w in workers}
        engine = create_engine(url)
        try:
            for process in processes.values():
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            stranded = _kill_mid_batch(engine, processes["victim"], "victim")
            delivered = select(func.count()).select_from(Reminder).where(Reminder.status == "due")
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline and _scalar(engine, delivered) < TOTAL:
                time.sleep(0.2)
            _assert_exactly_once(engine)
            _assert_taken_over(engine, stranded)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait(10)
            engine.dispose()


def _assert_taken_over(engine, stranded: dict[str, datetime]) -> None:  # type: ignore[no-untyped-def]
    """The dead scheduler's claim was delivered by the others, only after its lease ran out."""
    assert stranded, "nothing was stranded: the kill did not happen mid-batch"
    statement = select(ReminderTransition.reminder_id, ReminderTransition.actor, ReminderTransition.at).where(
        ReminderTransition.reminder_id.in_(list(stranded)), ReminderTransition.to_status == "due"
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    assert len(rows) == len(stranded)
    for row in rows:
        assert row.actor in ("scheduler:s2", "scheduler:s3")
        assert row.at.replace(tzinfo=None) >= stranded[row.reminder_id].replace(tzinfo=None)
    leftover = select(func.count()).select_from(Reminder).where(Reminder.claimed_by.is_not(None))
    assert _scalar(engine, leftover) == 0


def _assert_exactly_once(engine) -> None:  # type: ignore[no-untyped-def]
    assert (
        _scalar(
            engine,
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.status == "due", Reminder.delivered_at.is_not(None)),
        )
        == TOTAL
    )
    events = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.event_type == REMINDER_DUE)
    distinct_events = select(func.count(func.distinct(OutboxMessage.event_id))).where(
        OutboxMessage.event_type == REMINDER_DUE
    )
    assert _scalar(engine, events) == TOTAL
    assert _scalar(engine, distinct_events) == TOTAL
    reminders_in_events = text(
        "SELECT count(DISTINCT envelope->'data'->>'reminder_id') FROM outbox_message WHERE event_type = :t"
    )
    with engine.connect() as connection:
        assert connection.execute(reminders_in_events, {"t": REMINDER_DUE}).scalar_one() == TOTAL
    deliveries = select(func.count()).select_from(ReminderTransition).where(ReminderTransition.to_status == "due")
    assert _scalar(engine, deliveries) == TOTAL


def test_a_scheduler_in_another_process_is_woken_by_a_new_reminder(tmp_path, settings):  # type: ignore[no-untyped-def]
    """PostgreSQL NOTIFY: a scheduler sleeping up to 30 s delivers a reminder reconciled elsewhere at once."""
    url = settings.effective_database_url
    with UnitOfWork(settings) as uow:
        patient = Patient(org="org-a", external_id="x", created_at=utcnow())
        uow.session.add(patient)
        uow.commit()
    process = _start(url, "sleepy", tmp_path, CAREPATH_SCHEDULER_MAX_SLEEP="30")
    engine = create_engine(url)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # it found nothing and is asleep for up to 30 s
        due_at = utcnow()
        envelope = to_envelope(
            Event(
                PATHWAY_ASSESSED,
                SOURCE_PATHWAY,
                patient.id,
                {
                    "patient_id": patient.id,
                    "org": "org-a",
                    "assessment_seq": 1,
                    "deadlines": [{"kind": "pt_follow_up", "due_at": isoformat(due_at), "status": "pending"}],
                },
            )
        )
        consume(NOTIFICATIONS, envelope, None, handle_event, settings)
        delivered = select(Reminder.delivered_at).where(Reminder.patient_id == patient.id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _scalar(engine, delivered) is None:
            time.sleep(0.05)
        lateness = (_scalar(engine, delivered) - due_at).total_seconds()
        assert lateness < 3.0  # woken by NOTIFY, far below the sleep cap (1 s p99: bench/bench_scheduler.py)
    finally:
        process.terminate()
        process.wait(10)
        engine.dispose()
