"""compose.yaml, checked without a Docker engine: every command is a real `carepath` subcommand, every
CAREPATH_* variable a real setting, and the commands run as local processes against local services."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from carepath.cli import _parser
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
CAREPATH_SERVICES = {
    name: svc for name, svc in COMPOSE["services"].items() if svc.get("image", "").startswith("carepath")
}


def _subcommands() -> set[str]:
    parser = _parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_compose_validates_against_the_compose_specification() -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_every_part_of_the_stack() -> None:
    commands = {svc["command"][1] for svc in CAREPATH_SERVICES.values()}
    assert commands == {"migrate", "intake", "notifications", "worker", "relay", "scheduler"}
    assert {"postgres", "redis"} <= set(COMPOSE["services"])
    for name in ("postgres", "redis"):
        assert "healthcheck" in COMPOSE["services"][name]


@pytest.mark.parametrize("name", ["worker", "relay", "scheduler"])
def test_scaled_parts_have_no_fixed_name_or_port(name: str) -> None:
    """`docker compose up --scale worker=N` (relay, scheduler too): a fixed name or host port would collide."""
    service = COMPOSE["services"][name]
    assert "container_name" not in service and "ports" not in service and "hostname" not in service
    assert "--hostname" not in service["command"], "Celery node names come from each container's own hostname"


def test_no_service_has_a_fixed_container_name() -> None:
    assert not [name for name, svc in COMPOSE["services"].items() if "container_name" in svc]


def test_flower_is_an_optional_profile_on_the_broker_and_workers_send_events() -> None:
    flower = COMPOSE["services"]["flower"]
    assert flower["profiles"] == ["flower"]  # not started by a plain `docker compose up`
    broker = COMPOSE["x-carepath"]["environment"]["CAREPATH_BROKER_URL"]
    assert f"--broker={broker}" in flower["command"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])
    worker_env = CAREPATH_SERVICES["worker"]["environment"]
    env = {k: v for k, v in worker_env.items() if k.startswith("CAREPATH_")}
    configured = Settings(
        **{k.removeprefix("CAREPATH_").lower(): v for k, v in env.items() if k != "CAREPATH_SECRET_KEY"}
    )
    assert configured.task_events, "Flower sees nothing unless the worker sends task events"


@pytest.mark.parametrize("name", ["intake", "notifications"])
def test_http_services_get_the_opioid_value_sets_they_check_at_start(name: str) -> None:
    service = CAREPATH_SERVICES[name]
    folder = service["environment"]["CAREPATH_OPIOID_CDS_DIR"]
    assert any(volume.endswith(f":{folder}:ro") for volume in service["volumes"])


@pytest.mark.parametrize("name", sorted(CAREPATH_SERVICES))
def test_every_command_is_a_real_carepath_subcommand(name: str) -> None:
    command = CAREPATH_SERVICES[name]["command"]
    assert command[0] == "carepath"
    assert command[1] in _subcommands()
    _parser().parse_args(command[1:])  # and its arguments parse


@pytest.mark.parametrize("name", sorted(CAREPATH_SERVICES))
def test_every_carepath_variable_is_a_real_setting(name: str) -> None:
    known = {f"CAREPATH_{field.upper()}" for field in Settings.model_fields}
    variables = {key for key in CAREPATH_SERVICES[name].get("environment", {}) if key.startswith("CAREPATH_")}
    assert variables, "each carepath service is configured by CAREPATH_* variables"
    assert variables <= known, variables - known


@pytest.mark.parametrize("name", sorted(set(CAREPATH_SERVICES) - {"migrate"}))
def test_every_long_running_part_has_a_carepath_health_healthcheck(name: str) -> None:
    """An orchestrator restarts a stuck part: the healthcheck is `carepath health <the part>`."""
    test = CAREPATH_SERVICES[name]["healthcheck"]["test"]
    part = CAREPATH_SERVICES[name]["command"][1]
    assert test == ["CMD", "carepath", "health", part]
    _parser().parse_args(test[2:])
