"""Observability of the real stack (`carepath up`, its five parts as processes): after a run, one scrape
of the notifications /metrics shows every process type's metrics with values consistent with the run;
`carepath health` fails for a stuck (stopped) scheduler; production logs are JSON lines with request ids
and without MRNs."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_spine import OPIOID_HISTORY, _new_patient, _post
from tests.e2e.test_webhook_stack import Receiver

pytestmark = pytest.mark.e2e
PATIENTS = 2


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), sample.value))
    return found


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(value for got, value in samples.get(name, []) if all(got.get(k) == v for k, v in labels.items()))


def _reminders(stack: Stack, coordinator: dict[str, str], patient_id: str) -> list[dict]:
    response = httpx.get(
        f"{stack.notifications_url}/v1/reminders", params={"patient_id": patient_id}, headers=coordinator, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_one_scrape_sees_every_process_type_consistent_with_the_run(stack: Stack) -> None:
    receiver = Receiver()
    try:
        coordinator = stack.token("org-obs", "coordinator")
        created = httpx.post(
            f"{stack.notifications_url}/v1/webhook-endpoints", json={"url": receiver.url}, headers=coordinator
        )
        assert created.status_code == 201, created.text
        client = stack.token("org-obs", "client")
        patients = [_new_patient(stack, client, f"MRN-OBS-SECRET-{n}") for n in range(PATIENTS)]
        for patient_id in patients:
            for type_, days_ago, data in OPIOID_HISTORY:
                _post(stack, client, patient_id, type_, days_ago, data)

        def delivered() -> list[dict] | None:
            items = [r for p in patients for r in _reminders(stack, coordinator, p) if r["delivered_at"]]
            return items if len({r["patient_id"] for r in items}) == PATIENTS else None

        wait_for(delivered, timeout=90, what="a delivered reminder for every patient")
        wait_for(lambda: len(receiver.received) >= PATIENTS, timeout=90, what="webhooks for the due reminders")

        def settled() -> dict | None:
            samples = _samples(httpx.get(f"{stack.notifications_url}/metrics", timeout=10).text)
            done = _total(samples, "carepath_outbox_unfinished") == 0
            hooks = _total(samples, "carepath_channel_deliveries_total", channel="webhook", outcome="delivered")
            return samples if done and hooks >= len(receiver.received) else None

        samples = wait_for(settled, timeout=60, what="the outbox drained and webhook outcomes recorded")
    finally:
        receiver.server.shutdown()
    text = httpx.get(f"{stack.notifications_url}/metrics", timeout=10).text
    reminders_delivered = len(delivered() or [])

    # HTTP, per route template, from both HTTP services (never an id or an MRN in a label).
    posted = _total(
        samples, "carepath_http_requests_total", service="intake", route="/v1/patients/{patient_id}/updates"
    )
    assert posted >= PATIENTS * len(OPIOID_HISTORY)
    assert _total(samples, "carepath_http_request_seconds_count", service="notifications") > 0
    assert all(p not in text for p in patients) and "MRN-OBS" not in text
    # The worker (prefork children): task outcomes and durations, evaluations and coalesced updates.
    for task in ("carepath.pathway.consume", "carepath.notifications.consume", "carepath.channels.consume"):
        assert _total(samples, "carepath_tasks_total", task=task, outcome="handled") > 0, task
        assert _total(samples, "carepath_task_seconds_count", task=task) > 0, task
    evaluations = _total(samples, "carepath_pathway_evaluations_total")
    assert evaluations >= PATIENTS
    assert _total(samples, "carepath_pathway_updates_evaluated_total") == PATIENTS * len(OPIOID_HISTORY)
    assert _total(samples, "carepath_pathway_updates_per_evaluation_count") == evaluations
    # The scheduler: lateness of each delivered reminder, escalations, channel outcomes.
    assert _total(samples, "carepath_reminder_lateness_seconds_count") == reminders_delivered > 0
    assert _total(samples, "carepath_reminders_delivered_total") == reminders_delivered
    assert "carepath_reminders_escalated_total" in samples
    assert _total(samples, "carepath_channel_deliveries_total", channel="webhook", outcome="delivered") == len(
        receiver.received
    )
    # Database- and broker-derived gauges (notifications only), and the loops' heartbeats.
    assert _total(samples, "carepath_reminders_scheduled_past_due") == 0
    assert {labels["consumer"] for labels, _ in samples["carepath_parked_events"]} == {
        "pathway",
        "notifications",
        "channels",
    }
    assert {labels["consumer"] for labels, _ in samples["carepath_outbox_oldest_unfinished_seconds"]} >= {"pathway"}
    assert {labels["queue"] for labels, _ in samples["carepath_broker_queue_depth"]} == {
        "pathway",
        "notifications",
        "channels",
    }
    beats = {labels["loop"]: value for labels, value in samples["carepath_loop_heartbeat_timestamp_seconds"]}
    loops = ("relay", "worker", "reminders", "channels", "timed-reevaluation", "rule-change-reevaluation")
    assert set(beats) >= set(loops)
    assert all(time.time() - beats[loop] < 30 for loop in loops), beats
    # The intake's scrape has no database gauges (one place only).
    assert "carepath_outbox_unfinished" not in httpx.get(f"{stack.intake_url}/metrics", timeout=10).text


def _health(stack: Stack, part: str, *extra: str) -> int:
    import subprocess

    from tests.e2e.conftest import carepath_command

    return subprocess.run(
        [*carepath_command(), "health", part, *extra], env=stack.env, cwd=stack.workdir, capture_output=True, timeout=60
    ).returncode


def test_health_fails_when_the_scheduler_loop_is_stuck(stack: Stack) -> None:
    for part in ("worker", "relay", "scheduler", "intake", "notifications"):
        wait_for(lambda part=part: _health(stack, part) == 0, timeout=60, what=f"{part} healthy")
    scheduler = stack.child_pid("up", "scheduler")
    os.kill(scheduler, signal.SIGSTOP)  # alive, but no loop runs
    try:
        wait_for(lambda: _health(stack, "scheduler", "--max-age", "3") == 1, timeout=30, what="scheduler unhealthy")
        assert _health(stack, "relay", "--max-age", "3") == 0  # the others still beat
    finally:
        os.kill(scheduler, signal.SIGCONT)
    wait_for(lambda: _health(stack, "scheduler", "--max-age", "3") == 0, timeout=30, what="scheduler healthy again")


def test_production_logs_are_json_with_request_ids_and_no_mrn(stack_factory: Stack) -> None:
    stack_factory.env.update({"CAREPATH_ENV": "production", "CAREPATH_SECRET_KEY": "k" * 48})
    stack_factory.start("up")
    stack_factory.wait_ready()
    client = stack_factory.token("org-logs", "client")
    patient_id = _new_patient(stack_factory, client, "MRN-LOG-SECRET-9")
    request_id = "7d3a0f0e-2f4c-4b0a-9f57-5c6d2f0a1b2c"
    response = httpx.post(
        f"{stack_factory.intake_url}/v1/patients/{patient_id}/updates",
        json={"type": "surgery", "occurred_at": "2026-09-01T08:00:00+02:00", "data": {"procedure": "laminectomy"}},
        headers={**client, "X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 202 and response.headers["X-Request-ID"] == request_id

    def worker_line() -> dict | None:
        for line in _log_lines(stack_factory.workdir):
            if line.get("request_id") == request_id and line.get("part") == "worker":
                return line
        return None

    assert wait_for(worker_line, timeout=60, what="the worker's log line for the request")["event"]
    stack_factory.stop("up")
    text = "".join(path.read_text() for path in stack_factory.workdir.glob("*.log"))
    assert "MRN-LOG-SECRET" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), [
        line for line in lines if not line.startswith("{")
    ][:5]
    parts = {json.loads(line).get("part") for line in lines}
    assert parts >= {"up", "intake", "notifications", "worker", "relay", "scheduler"}


def _log_lines(workdir: Path) -> list[dict]:
    found = []
    for path in workdir.glob("*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found
