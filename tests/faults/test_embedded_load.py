"""Reliability scenario 4: the embedded default under load. `carepath up` (SQLite + filesystem broker) with
CAREPATH_WORKER_CONCURRENCY=2 under mixed load (pain assessments, reminders falling due, a coordinator
acknowledging and snoozing) -> no unhandled "database is locked" in any log, nothing lost, the invariant
checker passes on the SQLite URL.

CI: FAULT_EMBEDDED_SECONDS=120 (the default); by hand the 5-minute variant:
    FAULT_EMBEDDED_SECONDS=300 .venv/bin/pytest -q tests/faults -k embedded
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.conftest import record
from tests.faults.embedded import embedded_stack, log_lines
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Coordinator, Load

SECONDS = float(os.environ.get("FAULT_EMBEDDED_SECONDS", "120"))
pytestmark = pytest.mark.timeout(int(SECONDS) + 300)  # the by-hand variants run for 5 or 30 minutes
RATE = 8.0


def test_embedded_default_under_mixed_load(tmp_path: Path) -> None:
    stack = embedded_stack(tmp_path, tmp_path / "var", CAREPATH_WORKER_CONCURRENCY="2")
    stack.start("up")
    try:
        stack.wait_ready()
        load = Load(stack.intake_url, stack.token("clinic-embedded", "client"), patients=12, rate=RATE)
        load.seed()
        coordinator = Coordinator(stack.notifications_url, stack.token("clinic-embedded", "coordinator"))
        started = time.monotonic()
        load.start(SECONDS)
        coordinator.start(SECONDS)
        load.join()
        coordinator.join()
        stack.assert_running()
        report, waited = wait_until_consistent(stack.env["CAREPATH_DATABASE_URL"], load.accepted, timeout=180)
        locked = log_lines(stack, "database is locked")
        restarts = log_lines(stack, "exited with")
        record(
            "4. embedded default under load",
            load=(
                f"{RATE:g} updates/s for {SECONDS:g} s, {load.patients} patients, reminders falling due,"
                f" coordinator {dict(coordinator.actions)}; carepath up, SQLite + filesystem broker, 2 worker processes"
            ),
            fault="none (contention only)",
            sent=load.sent,
            statuses=dict(load.statuses),
            coordinator_statuses=dict(coordinator.statuses),
            database_is_locked_lines=len(locked),
            part_restarts=len(restarts),
            lost=len(report.lost),
            doubled=len(report.doubled),
            recovery_seconds=round(waited, 1),
            run_seconds=round(time.monotonic() - started, 1),
            invariants=report.summary(),
        )
        assert report.ok, report.summary()
        assert not locked, locked[:5]
        assert not restarts, restarts[:5]
        assert set(load.statuses) == {202}, load.statuses
        assert not [s for s in coordinator.statuses if s >= 500], coordinator.statuses
        assert sum(coordinator.actions.values()) > 0, "the coordinator never acted"
    finally:
        stack.stop_all()
