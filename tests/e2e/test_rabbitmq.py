"""The same stack with RabbitMQ as the broker, chosen by URL alone (the distributed pass runs it)."""

from __future__ import annotations

import os

import httpx
import pytest
from kombu import Connection

from shared.messaging.routing import QUEUES
from shared.testing import test_backend
from tests.e2e.conftest import Stack, wait_for

AMQP_URL = os.environ.get("CAREPATH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(test_backend() != "pg", reason="the distributed pass runs it")]


def _purge() -> None:
    with Connection(AMQP_URL) as connection:
        channel = connection.channel()
        for queue in QUEUES:
            try:
                channel.queue_purge(queue)
            except Exception:
                channel = connection.channel()


def test_stack_runs_on_rabbitmq(stack_factory: Stack) -> None:
    _purge()
    stack = stack_factory
    stack.env["CAREPATH_BROKER_URL"] = AMQP_URL
    stack.start("up")
    stack.wait_ready()
    headers = stack.token("org-amqp", "client")
    patient = httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": "MRN-R"}, headers=headers).json()
    # rule set 2026.2: a surgery alone raises no deadline, so a red-flag exam gives the reminder to reconcile
    update = {"type": "neuro_exam", "occurred_at": "2026-11-01T09:00:00+01:00", "data": {"progressive_deficit": True}}
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
        what="the worker to evaluate through RabbitMQ",
    )
    assert pathway["stage"] == "urgent_surgical_evaluation"
    coordinator = stack.token("org-amqp", "coordinator")
    reminders = wait_for(
        lambda: httpx.get(
            f"{stack.notifications_url}/v1/reminders", params={"patient_id": patient["id"]}, headers=coordinator
        ).json()["items"],
        what="reconciled reminders",
    )
    # one assessed event carries both: the referral, and (an episode without a surgery) the initial evaluation
    assert {r["kind"] for r in reminders} == {"urgent_surgical_referral", "initial_evaluation_overdue"}
