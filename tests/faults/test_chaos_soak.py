"""Reliability scenario 3: chaos soak. Three workers, two relays, two schedulers, intake and notifications,
each its own process on the private PostgreSQL and Redis, under mixed load (pain assessments, reminders
falling due, a coordinator acknowledging and snoozing through the API) while a seeded random schedule
SIGKILLs and restarts any of them, and the private Redis once. Then the invariant checker.

CI: FAULT_SOAK_SECONDS=120 (the default). By hand, the 5- and 30-minute variants:
    FAULT_SOAK_SECONDS=300 .venv/bin/pytest -q tests/faults -k soak
    FAULT_SOAK_SECONDS=1800 FAULT_SOAK_SEED=7 .venv/bin/pytest -q tests/faults -k soak
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from tests.e2e.conftest import Stack, carepath_command
from tests.faults.conftest import record
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Coordinator, Load
from tests.faults.servers import PrivatePostgres, PrivateRedis

SOAK_SECONDS = float(os.environ.get("FAULT_SOAK_SECONDS", "120"))
pytestmark = pytest.mark.timeout(int(SOAK_SECONDS) + 300)  # the by-hand variants run for 5 or 30 minutes
SEED = int(os.environ.get("FAULT_SOAK_SEED", "20261201"))
RATE = 8.0
LEASE_SECONDS = 10  # the relay's lease: what a message lost with a killed worker or Redis costs
# instance name -> carepath part; fault_stack started one of each part under the part's own name
EXTRA = {"worker-2": "worker", "worker-3": "worker", "relay-2": "relay", "scheduler-2": "scheduler"}
INSTANCES = {part: part for part in ("intake", "notifications", "worker", "relay", "scheduler")} | EXTRA


@pytest.fixture
def fault_env() -> dict[str, str]:
    return {"CAREPATH_RELAY_LEASE_SECONDS": str(LEASE_SECONDS), "CAREPATH_WORKER_CONCURRENCY": "1"}


def _start(stack: Stack, name: str) -> None:
    part = INSTANCES[name]
    argv = [*carepath_command(), part]
    if part == "worker":
        argv += ["--hostname", f"{name}@%h"]
    log = open(stack.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child process owns it
    stack.processes[name] = subprocess.Popen(
        argv, env=stack.env, cwd=stack.workdir, stdout=log, stderr=log, start_new_session=True
    )


def _chaos(stack: Stack, redis: PrivateRedis, rng: random.Random, seconds: float) -> list[tuple[float, str]]:
    """SIGKILL a random instance every 3-9 s and restart it 0.5-3 s later; Redis once, in the middle."""
    started = time.monotonic()
    kills: list[tuple[float, str]] = []
    redis_at = seconds * rng.uniform(0.3, 0.6)
    redis_done = False
    while time.monotonic() - started < seconds - 10:  # the last 10 s without faults: the load finishes
        time.sleep(rng.uniform(3, 9))
        elapsed = time.monotonic() - started
        if not redis_done and elapsed >= redis_at:
            redis.kill()
            kills.append((round(elapsed, 1), "redis"))
            time.sleep(rng.uniform(1, 4))
            redis.start()
            redis_done = True
            continue
        name = rng.choice(sorted(INSTANCES))
        stack.stop(name, signal.SIGKILL)
        kills.append((round(elapsed, 1), name))
        time.sleep(rng.uniform(0.5, 3))
        _start(stack, name)
    if not redis_done:
        redis.kill()
        kills.append((round(time.monotonic() - started, 1), "redis"))
        redis.start()
    return kills


def test_chaos_soak(fault_stack: Stack, private_pg: PrivatePostgres, private_redis: PrivateRedis) -> None:
    for name in EXTRA:
        _start(fault_stack, name)
    rng = random.Random(SEED)
    load = Load(fault_stack.intake_url, fault_stack.token("clinic-soak", "client"), patients=12, rate=RATE)
    load.seed()
    coordinator = Coordinator(fault_stack.notifications_url, fault_stack.token("clinic-soak", "coordinator"))
    load.start(SOAK_SECONDS)
    coordinator.start(SOAK_SECONDS)
    kills = _chaos(fault_stack, private_redis, rng, SOAK_SECONDS)
    last_fault = time.monotonic()
    load.join()
    coordinator.join()
    fault_stack.assert_running()  # every instance alive: only the schedule killed anything
    report, waited = wait_until_consistent(private_pg.url(), load.accepted, timeout=240)
    record(
        "3. chaos soak",
        load=(
            f"{RATE:g} updates/s for {SOAK_SECONDS:g} s, {load.patients} patients, reminders falling due,"
            f" coordinator {dict(coordinator.actions)}"
        ),
        fault=f"seed {SEED}: {len(kills)} SIGKILLs ({', '.join(name for _, name in kills)})",
        sent=load.sent,
        statuses=dict(load.statuses),
        transport_errors=load.transport_errors,
        coordinator_statuses=dict(coordinator.statuses),
        lost=len(report.lost),
        doubled=len(report.doubled),
        recovery_seconds=round(time.monotonic() - last_fault, 1),
        caught_up_after_load_seconds=round(waited, 1),
        invariants=report.summary(),
    )
    assert report.ok, report.summary()
    assert "redis" in {name for _, name in kills} and len(kills) >= 3
    assert not [s for s in load.statuses if s >= 500 and s != 503], load.statuses
    assert not [s for s in coordinator.statuses if s >= 500 and s != 503], coordinator.statuses
    assert sum(coordinator.actions.values()) > 0, "the coordinator never acted"
    assert report.due_reminders >= load.patients
