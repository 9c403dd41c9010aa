"""Reliability scenario 6: poison messages under load. A malformed message in the broker, an event of a type
its consumer does not handle, and an event whose handler raises every time are parked in the dead-letter
table with their error after N attempts (at once for the first two), visible in /metrics, while every other
event keeps flowing; `carepath events retry` replays a parked one."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from celery import Celery

from shared.events import PATHWAY_ASSESSED, SOURCE_PATHWAY, Event, to_envelope
from tests.e2e.conftest import Stack, wait_for
from tests.faults.conftest import record
from tests.faults.invariants import wait_until_consistent
from tests.faults.load import Load
from tests.faults.servers import PrivatePostgres, PrivateRedis

ATTEMPTS = 3


@pytest.fixture
def fault_env() -> dict[str, str]:
    return {"CAREPATH_DEAD_LETTER_AFTER": str(ATTEMPTS), "CAREPATH_RELAY_LEASE_SECONDS": "1"}


def _parked(stack: Stack) -> dict[str, float]:
    text = httpx.get(f"{stack.notifications_url}/metrics", timeout=10).text
    return {m[0]: float(m[1]) for m in re.findall(r'carepath_parked_events\{consumer="(\w+)"\} ([0-9.]+)', text)}


def _insert_outbox(pg: PrivatePostgres, event: Event, consumer: str) -> None:
    envelope = to_envelope(event)
    pg.sql(
        "INSERT INTO outbox_message (event_id, event_type, consumer, envelope, created_at, available_at, attempts)"
        f" VALUES ('{event.id}', '{event.type}', '{consumer}', '{json.dumps(envelope)}',"
        " now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc', 0)"
    )


def test_poison_messages_are_parked_and_the_rest_flows(
    fault_stack: Stack, private_pg: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    load = Load(fault_stack.intake_url, fault_stack.token("clinic-poison", "client"), patients=8, rate=10)
    load.seed()
    load.start(20)
    started = time.monotonic()
    # 1. malformed: not a CloudEvent at all, straight into the pathway queue
    broker = Celery(broker=private_redis.url)
    broker.send_task("carepath.pathway.consume", args=[{"garbage": True}, None], queue="pathway", routing_key="pathway")
    # 2. an event type the pathway does not consume, on its outbox
    _insert_outbox(private_pg, Event(PATHWAY_ASSESSED, SOURCE_PATHWAY, load.patient_ids[0], {}), "pathway")
    # 3. an assessed event whose payload makes the notifications handler raise every time
    broken = Event(PATHWAY_ASSESSED, SOURCE_PATHWAY, load.patient_ids[1], {"patient_id": 17, "deadlines": "x"})
    _insert_outbox(private_pg, broken, "notifications")

    parked = wait_for(
        lambda: (lambda p: p if p.get("pathway") == 2 and p.get("notifications") == 1 else None)(_parked(fault_stack)),
        timeout=90,
        what="three parked events in /metrics",
    )
    parked_after = time.monotonic() - started
    load.join()
    report, waited = wait_until_consistent(private_pg.url(), load.accepted, timeout=120)
    attempts = dict(private_pg.sql("SELECT reason, attempts FROM dead_letter ORDER BY id"))
    assert report.ok, report.summary()
    assert attempts == {"malformed": 1, "unknown_type": 1, "handler_failed": ATTEMPTS}
    assert not [s for s in load.statuses if s >= 500]

    [(handler_failed_id,)] = private_pg.sql("SELECT id FROM dead_letter WHERE reason = 'handler_failed'")
    fault_stack.run("events", "retry", str(handler_failed_id))  # replayed: fails again, parked again
    wait_for(
        lambda: private_pg.sql(
            f"SELECT 1 FROM dead_letter WHERE id = {handler_failed_id} AND retried_at IS NULL"
            f" AND parked_at IS NOT NULL AND attempts = {ATTEMPTS}"
        ),
        timeout=60,
        what="the replayed poison event parked again",
    )
    record(
        "6. poison messages",
        load=f"10 updates/s for 20 s, {load.patients} patients",
        fault="1 malformed broker message, 1 unknown-type event, 1 event failing every time",
        sent=load.sent,
        statuses=dict(load.statuses),
        lost=len(report.lost),
        doubled=len(report.doubled),
        parked=parked,
        parked_within_seconds=round(parked_after, 1),
        recovery_seconds=round(waited, 1),
        invariants=report.summary(),
    )
