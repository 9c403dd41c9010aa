"""PostgreSQL faults under load (reliability scenarios 1 and 2): the server restarted with a fast and with an
immediate shutdown, and the workers' and scheduler's connections cut mid-transaction.

While the database is down the intake answers 503 with Retry-After, never 500; every process reconnects by
itself (none is restarted by the test); no update that got a 202 is lost, and the invariant checker passes.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.faults.conftest import record
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Load
from tests.faults.servers import PrivatePostgres

LOAD_SECONDS = 24.0
RATE = 15.0


def _load(stack: Stack) -> Load:
    load = Load(stack.intake_url, stack.token("clinic-faults", "client"), patients=12, rate=RATE)
    load.seed()
    return load


def _finish(stack: Stack, pg: PrivatePostgres, load: Load, scenario: str, fault: str, fault_at: float) -> None:
    load.join()
    stack.assert_running()  # nobody died: every process reconnected by itself
    report, waited = wait_until_consistent(pg.url(), load.accepted, timeout=180)
    recovery = time.monotonic() - fault_at
    record(
        scenario,
        load=f"{RATE:g} updates/s for {LOAD_SECONDS:g} s, {load.patients} patients, reminders falling due",
        fault=fault,
        sent=load.sent,
        statuses=dict(load.statuses),
        lost=len(report.lost),
        doubled=len(report.doubled),
        recovery_seconds=round(recovery, 1),
        caught_up_after_load_seconds=round(waited, 1),
        invariants=report.summary(),
    )
    assert report.ok, report.summary()
    assert load.statuses.get(500, 0) == 0 and not [s for s in load.statuses if s >= 500 and s != 503]
    assert load.missing_retry_after == 0
    assert load.transport_errors == 0
    assert report.due_reminders >= load.patients  # each patient's overdue 4-week review was delivered


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restart_under_load(fault_stack: Stack, private_pg: PrivatePostgres, mode: str) -> None:
    load = _load(fault_stack)
    load.start(LOAD_SECONDS)
    time.sleep(6)
    fault_at = time.monotonic()
    private_pg.stop(mode)
    down_since = time.monotonic()
    while time.monotonic() - down_since < 6:  # intake and notifications stay up and say why
        assert httpx.get(f"{fault_stack.intake_url}/readyz", timeout=5).status_code == 503
        time.sleep(1)
    private_pg.start()
    _finish(
        fault_stack, private_pg, load, f"1. PostgreSQL restart ({mode})", f"pg_ctl stop -m {mode}, 6 s down", fault_at
    )
    assert load.statuses.get(503, 0) > 0, "the outage was not seen by the intake"


def test_connections_cut_mid_transaction(fault_stack: Stack, private_pg: PrivatePostgres) -> None:
    load = _load(fault_stack)
    load.start(LOAD_SECONDS)
    time.sleep(5)
    fault_at = time.monotonic()
    cut = 0
    for _ in range(8):  # every second for 8 s: every session that is not ours, mid-work or idle in a transaction
        rows = private_pg.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = 'carepath' AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        cut += len(rows)
        time.sleep(1)
    _finish(
        fault_stack,
        private_pg,
        load,
        "2. connections cut (pg_terminate_backend)",
        f"{cut} sessions terminated",
        fault_at,
    )
    assert cut > 0
