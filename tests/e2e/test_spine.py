"""The whole path of one patient update through real processes (acceptance of the event spine)."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def _post(stack: Stack, headers: dict[str, str], patient_id: str, type_: str, days_ago: float, data: dict) -> dict:
    response = httpx.post(
        f"{stack.intake_url}/v1/patients/{patient_id}/updates",
        json={"type": type_, "occurred_at": _at(days_ago), "data": data},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()


def _new_patient(stack: Stack, headers: dict[str, str], mrn: str) -> str:
    response = httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": mrn}, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _pathway(stack: Stack, headers: dict[str, str], patient_id: str) -> dict:
    response = httpx.get(f"{stack.intake_url}/v1/patients/{patient_id}/pathway", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


OPIOID_HISTORY = [
    ("surgery", 60, {"procedure": "laminectomy", "levels": ["L4-L5"]}),
    ("pain_assessment", 50, {"pain_nrs": 7, "distribution": "radicular"}),
    ("imaging", 49, {"modality": "mri", "findings": ["no_surgical_target"], "indication": "persistent pain"}),
    ("neuro_exam", 48, {"progressive_deficit": False}),
    ("medication", 45, {"drug_class": "nsaid", "action": "started"}),
    ("opioid_monitoring", 36, {"plan_documented": True, "pdmp_checked": True, "urine_drug_test": True}),
    ("medication", 35, {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 30}),
]


def test_opioid_review_reminder_reaches_due_through_every_process(stack: Stack) -> None:
    client = stack.token("org-a", "client")
    coordinator = stack.token("org-a", "coordinator")
    patient_id = _new_patient(stack, client, "MRN-E2E-1")
    for type_, days_ago, data in OPIOID_HISTORY:
        _post(stack, client, patient_id, type_, days_ago, data)

    pathway = wait_for(
        lambda: (p := _pathway(stack, client, patient_id))["updates_evaluated"] == 7 and p,
        what="the worker to evaluate all 7 updates",
    )
    assert pathway["stage"] == "first_line"
    review = [d for d in pathway["deadlines"] if d["kind"] == "opioid_review_4w"]
    assert [d["status"] for d in review] == ["pending"]

    def due_reminder() -> dict | None:
        response = httpx.get(
            f"{stack.notifications_url}/v1/reminders",
            params={"patient_id": patient_id, "kind": "opioid_review_4w"},
            headers=coordinator,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        items = [i for i in response.json()["items"] if i["status"] == "due"]
        return items[0] if items else None

    reminder = wait_for(due_reminder, what="the opioid_review_4w reminder to be delivered")
    assert reminder["delivered_at"] is not None
    assert reminder["due_at"] == review[0]["due_at"]
    assert "4-week" in reminder["text"] or "opioid" in reminder["text"].lower()
    stack.assert_running()


def test_update_committed_while_relay_is_down_is_not_lost(stack_factory: Stack) -> None:
    """The intake process dies after its commit and nothing was published: the relay, started later,
    still delivers the event (the outbox row is the truth, not the broker)."""
    stack = stack_factory
    stack.run("migrate")
    stack.start("intake", "notifications", "worker", "scheduler")
    stack.wait_ready()
    client = stack.token("org-a", "client")
    patient_id = _new_patient(stack, client, "MRN-E2E-2")
    _post(stack, client, patient_id, "surgery", 10, {"procedure": "foraminotomy"})
    time.sleep(2)
    assert _pathway(stack, client, patient_id)["updates_evaluated"] == 0  # nothing published yet

    stack.stop("intake", sig=signal.SIGKILL)  # the intake dies; its committed update must survive
    stack.start("relay", "intake")
    stack.wait_ready()
    pathway = wait_for(
        lambda: (p := _pathway(stack, client, patient_id))["updates_evaluated"] == 1 and p,
        what="the relay to publish the committed update",
    )
    assert pathway["stage"] == "initial_evaluation"


def test_up_stops_every_part_on_ctrl_c(stack: Stack) -> None:
    process = stack.processes["up"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    stack.processes.pop("up")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{stack.intake_url}/healthz", timeout=2)


def test_up_restarts_a_part_that_dies(stack: Stack) -> None:
    client = stack.token("org-a", "client")
    patient_id = _new_patient(stack, client, "MRN-E2E-3")
    os.kill(stack.child_pid("up", "relay"), signal.SIGKILL)
    _post(stack, client, patient_id, "surgery", 3, {"procedure": "laminectomy"})
    wait_for(
        lambda: _pathway(stack, client, patient_id)["updates_evaluated"] == 1,
        what="the restarted relay to publish the update",
    )
    os.kill(stack.child_pid("up", "worker"), signal.SIGKILL)
    _post(stack, client, patient_id, "neuro_exam", 2, {"progressive_deficit": False})
    wait_for(
        lambda: _pathway(stack, client, patient_id)["updates_evaluated"] == 2,
        what="the restarted worker to evaluate the update",
    )
    stack.assert_running()
