"""Reliability scenario 5: time. The whole stack runs on a shifted clock (CAREPATH_CLOCK_OFFSET_SECONDS,
development only) set to two weeks before Europe/Berlin's spring DST change (2027-03-28). Facts are written
with Berlin's winter offset (+01:00): an opioid start and nine dose increases per patient, each of which
makes a review due exactly 28 days later, across the DST change. Every reminder must be scheduled with that
due time exact in UTC (a local-time computation would be an hour early). Then Redis is flushed, every
process stopped and restarted with the clock 28 days ahead: each reminder is delivered exactly once.

CI: FAULT_TIME_REMINDERS=1000 (the default); by hand: FAULT_TIME_REMINDERS=10000 .venv/bin/pytest -q
tests/faults -k time_jump
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.faults.conftest import PARTS, record
from tests.faults.invariants import wait_until_consistent
from tests.faults.servers import PrivatePostgres, PrivateRedis

REMINDERS = int(os.environ.get("FAULT_TIME_REMINDERS", "1000"))
PER_PATIENT = 10  # the 4-week review of the start and one dose-change review per increase
BERLIN_WINTER = timezone(timedelta(hours=1))
FAKE_NOW = datetime(2027, 3, 14, 12, 0, tzinfo=UTC)  # DST in Berlin begins 2027-03-28 01:00 UTC
START = datetime(2027, 3, 14, 10, 0, tzinfo=BERLIN_WINTER)  # 09:00 UTC, before FAKE_NOW
STEP = timedelta(minutes=10)
KINDS = ("opioid_review_4w", "opioid_review_dose_change")
OFFSET = (FAKE_NOW - datetime.now(UTC)).total_seconds()
pytestmark = pytest.mark.timeout(300 + REMINDERS // 3)  # the by-hand 10,000 variant seeds for minutes


@pytest.fixture
def fault_env() -> dict[str, str]:
    # Seeding posts two requests per patient as fast as it can: the request limits are not under test here.
    return {
        "CAREPATH_CLOCK_OFFSET_SECONDS": f"{OFFSET:.0f}",
        "CAREPATH_RATE_LIMIT_PER_TOKEN": "1000000/minute",
        "CAREPATH_RATE_LIMIT_PER_ORG": "1000000/minute",
    }


def _facts() -> list[dict[str, object]]:
    facts: list[dict[str, object]] = [
        {
            "type": "medication",
            "occurred_at": START.isoformat(),
            "data": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 20},
        }
    ]
    for step in range(1, PER_PATIENT):
        facts.append(
            {
                "type": "medication",
                "occurred_at": (START + step * STEP).isoformat(),
                "data": {"drug_class": "opioid_ir", "action": "dose_increased", "mme_per_day": 20 + 5 * step},
            }
        )
    return facts


def _seed(stack: Stack, headers: dict[str, str], patients: int) -> list[str]:
    accepted: list[str] = []
    with httpx.Client(base_url=stack.intake_url, headers=headers, timeout=30) as client:
        for index in range(patients):
            patient = client.post("/v1/patients", json={"external_id": f"DST-{index}"})
            assert patient.status_code == 201, patient.text
            batch = client.post(f"/v1/patients/{patient.json()['id']}/updates:batch", json={"updates": _facts()})
            assert batch.status_code == 202, batch.text
            accepted += [item["update_id"] for item in batch.json()["updates"]]
    return accepted


def _reviews(pg: PrivatePostgres) -> list[tuple[object, ...]]:
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    return pg.sql(f"SELECT patient_id, kind, due_at, status, delivered_at FROM reminder WHERE kind IN ({kinds})")


def _wait(probe, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)
    return value


def test_reminders_28_days_ahead_across_dst_are_delivered_once_after_the_clock_jumps(
    fault_stack: Stack, private_pg: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    patients = REMINDERS // PER_PATIENT
    accepted = _seed(fault_stack, fault_stack.token("clinic-dst", "client"), patients)
    expected_due = sorted((START + step * STEP + timedelta(days=28)).astimezone(UTC) for step in range(PER_PATIENT))
    assert expected_due[0] > datetime(2027, 3, 28, 1, tzinfo=UTC)  # every one across the DST change
    scheduled = _wait(
        lambda: (rows := _reviews(private_pg)) and len(rows) == patients * PER_PATIENT and rows,
        timeout=max(300, REMINDERS * 0.1),  # 10,000 evaluations: minutes on a loaded 2-core machine
        what=f"{patients * PER_PATIENT} reviews scheduled",
    )
    wrong = [row for row in scheduled if row[3] != "scheduled" or row[2].replace(tzinfo=UTC) not in expected_due]
    per_patient = {row[0]: sorted(r[2].replace(tzinfo=UTC) for r in scheduled if r[0] == row[0]) for row in scheduled}

    fault_stack.stop_all()
    subprocess.run(["redis-cli", "-p", str(private_redis.port), "flushall"], check=True, capture_output=True)
    jumped_to = expected_due[-1] + timedelta(minutes=2)
    fault_stack.env["CAREPATH_CLOCK_OFFSET_SECONDS"] = f"{(jumped_to - datetime.now(UTC)).total_seconds():.0f}"
    restarted = time.monotonic()
    fault_stack.start(*PARTS)
    fault_stack.wait_ready()
    delivered = _wait(
        lambda: (rows := _reviews(private_pg)) and all(row[4] is not None for row in rows) and rows,
        timeout=300,
        what="every review delivered",
    )
    delivered_after = time.monotonic() - restarted
    # the outbox drains every reminder.due event to its consumers after the deliveries: ~15 events per reminder-second
    report, _ = wait_until_consistent(private_pg.url(), accepted, timeout=max(180, REMINDERS * 0.2))
    review_events = private_pg.sql(
        "SELECT count(*), count(DISTINCT event_id) FROM outbox_message o WHERE event_type = 'carepath.reminder.due'"
        " AND consumer = (SELECT min(consumer) FROM outbox_message WHERE event_type = 'carepath.reminder.due')"
    )[0]
    record(
        "5. time: 28 days ahead across DST",
        load=f"{patients} patients x {PER_PATIENT} reviews = {patients * PER_PATIENT} reminders, facts at +01:00",
        fault="Redis flushed, every process restarted with its clock 28 days ahead (across 2027-03-28 DST)",
        sent=2 * patients,
        lost=len(report.lost),
        doubled=len(report.doubled),
        wrong_due_times=len(wrong),
        delivered=sum(row[4] is not None for row in delivered),
        reminder_due_events=review_events,
        recovery_seconds=round(delivered_after, 1),
        invariants=report.summary(),
        unfinished_outbox=private_pg.sql(  # what is left, if anything: by consumer and type, with attempts
            "SELECT consumer, event_type, count(*), max(attempts), count(published_at) FROM outbox_message"
            " WHERE done_at IS NULL GROUP BY 1, 2 ORDER BY 3 DESC"
        ),
    )
    assert not wrong, wrong[:5]
    assert all(dues == expected_due for dues in per_patient.values())
    assert report.ok, report.summary()
    assert review_events[0] == review_events[1] >= patients * PER_PATIENT
