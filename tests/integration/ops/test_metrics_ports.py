"""A part without HTTP serves its metrics on CAREPATH_METRICS_PORT, as each container of compose does: the
relay its loop heartbeat; the worker (a prefork pool, aggregated through its own multi-process folder) its
heartbeat and the outcomes of the tasks its children ran. Real processes, database and broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from carepath.apps import create_intake_app
from shared.auth import create_token
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape_until(port: int, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            if wanted in text:
                return text
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{wanted} not scraped from port {port}: {text[-2000:]}")


@pytest.fixture
def part(settings: Settings, tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, port: int) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"CAREPATH_METRICS_PORT": str(port), "CAREPATH_METRICS_HOST": "127.0.0.1"})
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-m", "carepath.cli", name], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _value(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_relay_and_worker_serve_their_metrics_on_their_port(settings: Settings, part) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_intake_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    patient_id = client.post("/v1/patients", json={"external_id": "MRN-PORT"}, headers=headers).json()["id"]
    update = {"type": "surgery", "occurred_at": "2026-09-01T08:00:00+02:00", "data": {"procedure": "laminectomy"}}
    assert client.post(f"/v1/patients/{patient_id}/updates", json=update, headers=headers).status_code == 202
    relay_port, worker_port = _free_port(), _free_port()
    part("relay", relay_port)
    part("worker", worker_port)
    relay = _scrape_until(relay_port, 'loop="relay"')
    assert time.time() - _value(relay, "carepath_loop_heartbeat_timestamp_seconds", loop="relay") < 30
    handled = 'outcome="handled",task="carepath.pathway.consume"'
    worker = _scrape_until(worker_port, handled)  # counted in a pool child, served by the main process
    assert _value(worker, "carepath_tasks_total", task="carepath.pathway.consume", outcome="handled") == 1
    assert _value(worker, "carepath_task_seconds_count", task="carepath.pathway.consume") == 1
    assert _value(worker, "carepath_pathway_evaluations_total") == 1
    assert time.time() - _value(worker, "carepath_loop_heartbeat_timestamp_seconds", loop="worker") < 30
    assert "MRN-PORT" not in worker and patient_id not in worker
