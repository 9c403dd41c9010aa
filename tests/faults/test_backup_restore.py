"""Reliability scenario 8: backup and restore. `pg_dump` of the private PostgreSQL while the stack is under
load; the stack is stopped, the dump restored into a fresh database (pg_restore) and the stack started on
it with an empty Redis. The outbox rows the dump holds unfinished are replayed, and the reminders that fell
due between the dump and the restart (patients whose 4-week opioid review falls due seconds after the
dump) are delivered exactly once. Updates accepted after the dump are, by definition, not in the backup:
the checker is given the updates accepted before pg_dump started (its snapshot)."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.conftest import Stack
from tests.faults.conftest import PARTS, record
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Load, history
from tests.faults.servers import PrivatePostgres, PrivateRedis, _as_postgres, _pg_bin

RATE = 10.0
LOAD_SECONDS = 16.0
GAP_PATIENTS = 4
DUE_AFTER_DUMP_SECONDS = 20.0


def _seed_gap_patients(stack: Stack, load: Load) -> list[str]:
    """Patients whose 4-week opioid review (28 days after the start) falls due DUE_AFTER_DUMP_SECONDS from now."""
    days = 28 - DUE_AFTER_DUMP_SECONDS / 86400
    ids = []
    with httpx.Client(base_url=stack.intake_url, headers=load.headers, timeout=30) as client:
        for index in range(GAP_PATIENTS):
            patient = client.post("/v1/patients", json={"external_id": f"GAP-{index}"})
            assert patient.status_code == 201, patient.text
            batch = client.post(f"/v1/patients/{patient.json()['id']}/updates:batch", json={"updates": history(days)})
            assert batch.status_code == 202, batch.text
            load.accepted += [item["update_id"] for item in batch.json()["updates"]]
            ids.append(patient.json()["id"])
    return ids


def _pg(pg: PrivatePostgres, tool: str, *args: str) -> None:
    argv = [_pg_bin(tool), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", *args]
    subprocess.run(_as_postgres(argv), check=True, capture_output=True, timeout=300)


def test_restore_of_a_dump_taken_under_load_replays_and_delivers_the_gap_once(
    fault_stack: Stack, private_pg: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    load = Load(fault_stack.intake_url, fault_stack.token("clinic-backup", "client"), patients=8, rate=RATE)
    load.seed()
    load.start(LOAD_SECONDS)
    time.sleep(4)
    gap_patients = _seed_gap_patients(fault_stack, load)
    gap_due_from = datetime.now(UTC)
    accepted_before_dump = list(load.accepted)
    dump = private_pg.root / "carepath.dump"
    dump_started = time.monotonic()
    _pg(private_pg, "pg_dump", "-Fc", "-f", str(dump), "carepath")
    dump_seconds = time.monotonic() - dump_started
    load.join()
    fault_stack.stop_all()
    while datetime.now(UTC) < gap_due_from + timedelta(seconds=DUE_AFTER_DUMP_SECONDS + 2):
        time.sleep(0.5)  # the gap: the stack is down while the reminders fall due
    private_pg.sql("CREATE DATABASE restored", database="postgres")
    restore_started = time.monotonic()
    _pg(private_pg, "pg_restore", "--no-owner", "-d", "restored", str(dump))
    restore_seconds = time.monotonic() - restore_started
    subprocess.run(["redis-cli", "-p", str(private_redis.port), "flushall"], check=True, capture_output=True)
    pending = private_pg.sql("SELECT count(*) FROM outbox_message WHERE done_at IS NULL", database="restored")[0][0]
    fault_stack.env["CAREPATH_DATABASE_URL"] = private_pg.url("restored")
    started = time.monotonic()
    fault_stack.start(*PARTS)
    fault_stack.wait_ready()
    report, waited = wait_until_consistent(private_pg.url("restored"), accepted_before_dump, timeout=180)
    ids = ", ".join(f"'{pid}'" for pid in gap_patients)
    gap = private_pg.sql(
        "SELECT r.id, r.delivered_at, count(o.id) FROM reminder r LEFT JOIN outbox_message o"
        " ON o.event_type = 'carepath.reminder.due' AND o.envelope::text LIKE '%' || r.id || '%'"
        f" WHERE r.patient_id IN ({ids}) AND r.kind = 'opioid_review_4w' GROUP BY r.id, r.delivered_at",
        database="restored",
    )
    record(
        "8. backup and restore",
        load=f"{RATE:g} updates/s for {LOAD_SECONDS:g} s, {load.patients + GAP_PATIENTS} patients",
        fault=(
            f"pg_dump -Fc under load ({dump_seconds:.1f} s), stack stopped, pg_restore into a fresh database"
            f" ({restore_seconds:.1f} s), Redis flushed; {GAP_PATIENTS} reviews fell due in the gap"
        ),
        sent=load.sent,
        statuses=dict(load.statuses),
        accepted_before_dump=len(accepted_before_dump),
        outbox_unfinished_in_dump=pending,
        gap_reminders={str(rid): (str(delivered), events) for rid, delivered, events in gap},
        lost=len(report.lost),
        doubled=len(report.doubled),
        recovery_seconds=round(time.monotonic() - started, 1),
        consistent_after_ready_seconds=round(waited, 1),
        invariants=report.summary(),
    )
    assert report.ok, report.summary()
    assert len(gap) >= GAP_PATIENTS, gap
    assert all(delivered is not None for _, delivered, _ in gap), gap
    dump_instant = gap_due_from.replace(tzinfo=None)
    due_in_gap = private_pg.sql(
        f"SELECT count(*) FROM reminder WHERE patient_id IN ({ids}) AND kind = 'opioid_review_4w'"
        f" AND due_at > '{dump_instant.isoformat()}'",
        database="restored",
    )[0][0]
    assert due_in_gap == GAP_PATIENTS, "the gap reviews did not fall due after the dump"

    assert pending > 0, "the dump held no unfinished outbox row: nothing was replayed"
