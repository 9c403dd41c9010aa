"""Reliability scenario 7: the disk under the embedded database fills up. `carepath up` (SQLite + filesystem
broker) runs with its var dir on a small tmpfs; under load a filler file takes every free byte. Writes are
answered 503 with Retry-After (never 500) and nothing is half-written; when the filler is deleted the stack
recovers by itself (no part restarted by the test, the supervisor still up) and the invariant checker
passes on the SQLite database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from tests.faults.conftest import record
from tests.faults.embedded import embedded_stack, fill, log_lines, small_tmpfs
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Load

RATE = 8.0
LOAD_SECONDS = 24.0
FULL_SECONDS = 12.0


def test_disk_full_under_load_answers_503_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "var", size_mb=48) as var:
        stack = embedded_stack(tmp_path, var)
        stack.start("up")
        try:
            stack.wait_ready()
            load = Load(stack.intake_url, stack.token("clinic-disk", "client"), patients=6, rate=RATE)
            load.seed()
            load.start(LOAD_SECONDS)
            time.sleep(6)
            before = dict(load.statuses)
            fault_at = time.monotonic()
            with sqlite3.connect(var / "carepath.db", timeout=10) as db:  # an empty WAL: the next writes must grow it
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler, size = fill(var)
            time.sleep(FULL_SECONDS)
            during = {code: n - before.get(code, 0) for code, n in load.statuses.items()}
            ready_while_full = httpx.get(f"{stack.intake_url}/readyz", timeout=5).status_code
            filler.unlink()
            freed_at = time.monotonic()
            load.join()
            stack.assert_running()  # the supervisor did not give up
            report, _ = wait_until_consistent(stack.env["CAREPATH_DATABASE_URL"], load.accepted, timeout=180)
            with sqlite3.connect(var / "carepath.db") as db:
                integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
                unfinished = db.execute(
                    "SELECT id, event_type, consumer, attempts, available_at FROM outbox_message WHERE done_at IS NULL"
                ).fetchall()
            after = httpx.post(
                f"{stack.intake_url}/v1/patients/{load.patient_ids[0]}/updates",
                headers=load.headers,
                json={
                    "type": "pain_assessment",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "data": {"pain_nrs": 3, "distribution": "axial"},
                },
                timeout=10,
            )
            restarts = log_lines(stack, "exited with")
            record(
                "7. disk full (embedded)",
                load=f"{RATE:g} updates/s for {LOAD_SECONDS:g} s, {load.patients} patients, carepath up on a 48 MiB tmpfs",
                fault=f"filler of {size >> 20} MiB filled the var dir for {FULL_SECONDS:g} s",
                sent=load.sent,
                statuses=dict(load.statuses),
                statuses_while_full=during,
                ready_while_full=ready_while_full,
                lost=len(report.lost),
                doubled=len(report.doubled),
                part_restarts=len(restarts),
                recovery_seconds=round(time.monotonic() - freed_at, 1),
                fault_to_consistent_seconds=round(time.monotonic() - fault_at, 1),
                invariants=report.summary(),
            )
            assert report.ok, (report.summary(), unfinished)
            assert integrity == "ok"
            assert during.get(503, 0) > 0, f"the full disk was not seen by the intake: {during}"
            assert not [s for s in load.statuses if s >= 500 and s != 503], load.statuses
            assert load.missing_retry_after == 0 and load.transport_errors == 0
            assert after.status_code == 202, after.text
        finally:
            stack.stop_all()
