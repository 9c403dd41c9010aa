"""The reminder scheduler: delivers reminders at due_at, returns snoozed ones at `until`, escalates
unacknowledged ones. Time lives in the database (`reminder.next_action_at`, indexed).

One pass (`deliver_due`) = claim, commit; act, commit (claims.py). Several schedulers may run at once.

The loop sleeps until the earliest next_action_at (capped by settings.scheduler_max_sleep) and can be
woken early (wakeup.py: in-process after commit, and across processes by PostgreSQL NOTIFY).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime

from sqlalchemy import or_, select

from services.notifications.claims import (
    Claimed,
    act,
    claim,
    delivery_event_id,
    escalation_event_id,
    lock_in_id_order,
)
from services.notifications.wakeup import sleep, start_listener, wake, wake_after_commit
from shared.clock import utcnow
from shared.db.tables import Reminder
from shared.db.uow import UnitOfWork
from shared.observability.metrics import beat
from shared.observability.tracing import tracer
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.scheduler")

IDLE_BACKOFF_SECONDS = 0.1
STOP_CHECK_SECONDS = 0.25
_c = Reminder.__table__.c  # type: ignore[attr-defined]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_seconds(settings: Settings) -> float:
    return settings.scheduler_lease_seconds


def deliver_due(
    settings: Settings, now: datetime | None = None, *, worker_id: str, limit: int, lease: float | None = None
) -> dict[str, int]:
    """One scheduler pass (claim, commit; act, commit). Returns counts by action, plus "claimed".
    `now` fixes the clock for tests; by default the act records the instant it runs (delivered_at)."""
    fixed = now
    now = now or utcnow()
    lease = lease_seconds(settings) if lease is None else lease
    with UnitOfWork(settings) as uow:
        claimed = claim(uow, now, worker_id, limit, lease)
        uow.commit()
    if not claimed:
        return {"claimed": 0, "delivered": 0, "unsnoozed": 0, "escalated": 0}
    # The events published here carry this span's trace context.
    span = tracer().start_as_current_span("deliver due reminders", attributes={"carepath.claimed": len(claimed)})
    with span, UnitOfWork(settings) as uow:
        lock_in_id_order(uow, claimed)
        counts = act(uow, claimed, worker_id, fixed or utcnow())
        uow.commit()
    return {"claimed": len(claimed), **counts}


def next_action_at(settings: Settings, now: datetime) -> datetime | None:
    """The earliest next_action_at no live lease holds (an index scan on ix_reminder_next_action that
    skips the few leased rows)."""
    with UnitOfWork(settings, read_only=True) as uow:
        return uow.session.execute(
            select(_c.next_action_at)
            .where(_c.next_action_at.is_not(None), or_(_c.claim_expires_at.is_(None), _c.claim_expires_at <= now))
            .order_by(_c.next_action_at)
            .limit(1)
        ).scalar()


def sleep_seconds(now: datetime, earliest: datetime | None, max_sleep: float, *, idle: bool) -> float:
    """Decision as a value: how long to sleep before the next pass. Until the earliest action, capped;
    if that is already past but the pass found nothing claimable (a race with another scheduler), back
    off briefly instead of spinning."""
    if earliest is None:
        return max_sleep
    delta = (earliest - now).total_seconds()
    if delta <= 0:
        return min(max_sleep, IDLE_BACKOFF_SECONDS) if idle else 0.0
    return min(max_sleep, delta)


def _pass(settings: Settings, worker_id: str, lease: float | None) -> float:
    """One pass and the sleep that should follow it."""
    counts = deliver_due(settings, worker_id=worker_id, limit=settings.scheduler_batch, lease=lease)
    if counts["claimed"]:
        log.info("scheduler pass: %s", counts)  # counts only: no ids, no PHI
    if counts["claimed"] >= settings.scheduler_batch:
        return 0.0  # a backlog: keep going
    now = utcnow()
    return sleep_seconds(now, next_action_at(settings, now), settings.scheduler_max_sleep, idle=not counts["claimed"])


def run_scheduler(
    stop: threading.Event,
    settings: Settings | None = None,
    *,
    worker_id: str | None = None,
    lease: float | None = None,
) -> None:
    """Loop until `stop` is set. Several schedulers may run at once (leased claims)."""
    settings = settings or get_settings()
    worker_id = worker_id or default_worker_id()
    log.info(
        "scheduler started (lease %.1fs, batch %d)",
        lease or lease_seconds(settings),
        settings.scheduler_batch,
    )
    start_listener(settings.effective_database_url, stop)
    while not stop.is_set():
        try:
            delay = _pass(settings, worker_id, lease)
        except Exception:  # database unreachable or a deadlock victim: leases make a retry safe
            log.exception("scheduler pass failed; retrying")
            delay = settings.scheduler_max_sleep
        beat("reminders")
        if delay > 0:
            sleep(stop, delay, STOP_CHECK_SECONDS)
    log.info("scheduler stopped")


__all__ = [
    "Claimed",
    "act",
    "claim",
    "deliver_due",
    "delivery_event_id",
    "escalation_event_id",
    "next_action_at",
    "run_scheduler",
    "sleep_seconds",
    "wake",
    "wake_after_commit",
]
