"""Fault scenarios on real processes and private servers (PostgreSQL from initdb, redis-server), each on free
loopback ports, so a scenario may kill and restart them. Every scenario ends with the shared invariant
checker and appends its figures (load, fault, sent, lost, doubled, recovery) to the results file that
docs/reliability.md quotes (FAULT_RESULTS, default var/fault-results.jsonl)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, _base_env, pytest_runtest_makereport

__all__ = ["pytest_runtest_makereport"]  # the hook that lets a failed scenario print its process logs
from tests.faults.servers import PrivatePostgres, PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("FAULT_RESULTS", ROOT / "var" / "fault-results.jsonl"))
PARTS = ("intake", "notifications", "worker", "relay", "scheduler")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: that is private to root, and PostgreSQL runs as its own account.
    root = Path(tempfile.mkdtemp(prefix="carepath-faults-pg-"))
    server = PrivatePostgres(root).init()
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fault_env() -> dict[str, str]:
    """Extra settings of a scenario's stack (a module overrides this fixture)."""
    return {}


@pytest.fixture
def fault_stack(
    tmp_path: Path,
    private_pg: PrivatePostgres,
    private_redis: PrivateRedis,
    fault_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """Every part as its own process (as compose runs them) on the private servers, migrated and ready."""
    env = _base_env(tmp_path)
    env.update({"CAREPATH_DATABASE_URL": private_pg.url(), "CAREPATH_BROKER_URL": private_redis.url, **fault_env})
    stack = Stack(
        env=env,
        workdir=tmp_path,
        intake_url=f"http://127.0.0.1:{env['CAREPATH_INTAKE_PORT']}",
        notifications_url=f"http://127.0.0.1:{env['CAREPATH_NOTIFICATIONS_PORT']}",
    )
    stack.run("migrate")
    stack.start(*PARTS)
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(f"\n===== process logs of the failed scenario =====\n{stack.logs()}")


def record(scenario: str, **figures: Any) -> None:
    """Append one scenario's figures to the results file (one JSON line per run)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps({"scenario": scenario, **figures}, default=str) + "\n")
