"""compose.yaml's own commands and environment, run as local processes against the local PostgreSQL and
Redis (there is no Docker engine here): the distributed deployment as compose describes it."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from shared.testing import test_backend
from tests.e2e.conftest import Stack, carepath_command, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(test_backend() != "pg", reason="the distributed pass runs it")]
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def _bind_mounts(name: str) -> dict[str, str]:
    """A service's bind mounts, container path -> the host folder it stands for (relative to compose.yaml)."""
    mounts = {}
    for volume in COMPOSE[name].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            mounts[target] = str((ROOT / source).resolve())
    return mounts


def _service_env(name: str, stack: Stack) -> dict[str, str]:
    env = dict(stack.env)
    mounts = _bind_mounts(name)
    for key, value in COMPOSE[name].get("environment", {}).items():
        if str(value) in mounts:  # a path inside the container: the host folder compose mounts there
            value = mounts[str(value)]
        if key in ("CAREPATH_DATABASE_URL", "CAREPATH_BROKER_URL"):
            continue  # compose's hosts are container names: keep the test's local servers
        if key.endswith("_HOST"):
            value = "127.0.0.1"
        if key.endswith("_PORT"):
            continue  # free ports chosen by the fixture
        env[key] = str(value)
    return env


def _ports(stack: Stack) -> dict[str, str]:
    return {key: stack.env[key] for key in ("CAREPATH_INTAKE_PORT", "CAREPATH_NOTIFICATIONS_PORT")}


def test_compose_commands_run_the_distributed_stack(stack_factory: Stack) -> None:
    stack = stack_factory
    stack.env["CAREPATH_SECRET_KEY"] = secrets.token_urlsafe(48)
    migrate = COMPOSE["migrate"]["command"]
    done = subprocess.run(
        [*carepath_command(), *migrate[1:]],
        env=_service_env("migrate", stack),
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("intake", "notifications", "worker", "relay", "scheduler"):
        env = _service_env(name, stack)
        assert env["CAREPATH_ENV"] == "production"
        stack.env = env
        stack.start(*COMPOSE[name]["command"][1:])
    stack.wait_ready()
    for name in ("intake", "notifications", "worker", "relay", "scheduler"):  # compose's healthchecks pass
        check = COMPOSE[name]["healthcheck"]["test"][1:]

        def healthy(check: list[str] = check, name: str = name) -> bool:
            done = subprocess.run(
                [*carepath_command(), *check[1:]],
                env=_service_env(name, stack) | _ports(stack),
                cwd=stack.workdir,
                capture_output=True,
                timeout=60,
            )
            return done.returncode == 0

        wait_for(healthy, timeout=60, what=f"{name}'s healthcheck")
    headers = stack.token("org-compose", "client")
    patient = httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": "MRN-C"}, headers=headers).json()
    update = {"type": "neuro_exam", "occurred_at": "2026-11-01T09:00:00-05:00", "data": {"progressive_deficit": True}}
    assert (
        httpx.post(f"{stack.intake_url}/v1/patients/{patient['id']}/updates", json=update, headers=headers).status_code
        == 202
    )
    pathway = wait_for(
        lambda: (
            (p := httpx.get(f"{stack.intake_url}/v1/patients/{patient['id']}/pathway", headers=headers).json())[
                "updates_evaluated"
            ]
            == 1
            and p
        ),
        what="the distributed stack to evaluate the update",
    )
    assert pathway["stage"] == "urgent_surgical_evaluation"
