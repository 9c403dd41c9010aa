"""One scheduler pass, as pieces a test can drive: claim (leased), then act (conditional updates, outbox
events and history in one transaction). The loop around them is scheduler.py.

1. claim: lease up to `limit` rows whose next_action_at has passed and that no live scheduler holds
   (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one conditional UPDATE ... RETURNING under its write lock).
   A scheduler killed after committing its claim loses nothing: the lease runs out and another takes over.
2. act: each change is a conditional UPDATE (still claimed by us, still in the expected status, still
   due), its event goes through the outbox in the same transaction. A delivery's event id is derived from
   (patient, kind, due_at) and the outbox is unique per (event id, consumer), so even a scheduler that
   outlived its lease cannot deliver twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from opentelemetry.trace import set_span_in_context
from sqlalchemy import Select, and_, case, or_, select, update

from services.notifications import transitions as t
from services.notifications.escalation import escalation_at
from shared import orgtime
from shared.clock import isoformat
from shared.db.tables import Reminder
from shared.db.tables.reminders import ORIGIN_PATHWAY, ORIGIN_RULE_CHANGE
from shared.db.uow import UnitOfWork
from shared.events import REMINDER_DUE, REMINDER_ESCALATED, SOURCE_SCHEDULER, Event
from shared.observability.metrics import ESCALATIONS, REMINDER_LATENESS, REMINDERS_DELIVERED
from shared.observability.tracing import start_continued_span

_EVENT_NAMESPACE = uuid.UUID("6f1c1f1e-4d1b-4c4e-9a51-2b7d0f3c9e10")
_table = Reminder.__table__  # type: ignore[attr-defined]
_c = _table.c
_ACTIONABLE = (t.SCHEDULED, t.SNOOZED, t.DUE)


@dataclass(frozen=True)
class Claimed:
    id: str
    org: str
    patient_id: str
    kind: str
    due_at: datetime
    status: str
    escalated_at: datetime | None
    origin: str = ORIGIN_PATHWAY
    origin_rule_set_version: str | None = None
    assigned_to: str | None = None  # the owning coordinator's subject id
    traceparent: str | None = None


def delivery_event_id(patient_id: str, kind: str, due_at: datetime) -> str:
    """Stable per (patient, kind, due_at): a second delivery would collide in the outbox and consumers."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"due|{patient_id}|{kind}|{isoformat(due_at)}"))


def escalation_event_id(reminder_id: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"escalated|{reminder_id}"))


def _claimable(now: datetime, limit: int) -> Select[Any]:
    return (
        select(_c.id)
        .where(
            _c.next_action_at <= now,
            _c.status.in_(_ACTIONABLE),
            or_(_c.claim_expires_at.is_(None), _c.claim_expires_at <= now),
        )
        .order_by(_c.next_action_at)
        .limit(limit)
    )


def claim(uow: UnitOfWork, now: datetime, worker_id: str, limit: int, lease: float) -> list[Claimed]:
    """Lease up to `limit` reminders that need action now. No commit."""
    pending = _claimable(now, limit)
    if uow.is_sqlite:
        target = _c.id.in_(pending.scalar_subquery())
    else:
        ids = list(uow.session.execute(pending.with_for_update(skip_locked=True)).scalars())
        if not ids:
            return []
        target = _c.id.in_(ids)
    rows = uow.session.execute(
        update(_table)
        .where(target)
        .values(claimed_by=worker_id, claim_expires_at=now + timedelta(seconds=lease))
        .returning(
            _c.id,
            _c.org,
            _c.patient_id,
            _c.kind,
            _c.due_at,
            _c.status,
            _c.escalated_at,
            _c.origin,
            _c.origin_rule_set_version,
            _c.assigned_to,
            _c.traceparent,
        )
    ).all()
    return [Claimed(*row) for row in rows]


def _still_ours(ids: list[str], worker_id: str, status: str, now: datetime) -> Any:
    return and_(_c.id.in_(ids), _c.claimed_by == worker_id, _c.status == status, _c.next_action_at <= now)


def _escalation_case(items: list[Claimed], since: datetime, zones: dict[str, tzinfo]) -> Any:
    """next_action_at per (organisation, kind) for reminders entering `due` at `since`, business days
    counted in each organisation's time zone (one UPDATE for every kind)."""
    pairs = sorted({(i.org, i.kind) for i in items})
    return case(
        *(((_c.org == org) & (_c.kind == kind), escalation_at(kind, since, zones.get(org, UTC))) for org, kind in pairs)
    )


_RELEASED = {"claimed_by": None, "claim_expires_at": None, "version": _c.version + 1}


def _changed(uow: UnitOfWork, statement: Any) -> list[str]:
    return list(uow.session.execute(statement.returning(_c.id)).scalars())


def _deliver(
    uow: UnitOfWork, items: list[Claimed], worker_id: str, now: datetime, zones: dict[str, tzinfo]
) -> list[str]:
    """scheduled -> due: delivered_at set, escalation timer started. Returns the ids changed."""
    if not items:
        return []
    return _changed(
        uow,
        update(_table)
        .where(_still_ours([i.id for i in items], worker_id, t.SCHEDULED, now))
        .values(
            status=t.DUE,
            delivered_at=now,
            next_action_at=_escalation_case(items, now, zones),
            updated_at=now,
            **_RELEASED,
        ),
    )


def _unsnooze(
    uow: UnitOfWork, items: list[Claimed], worker_id: str, now: datetime, zones: dict[str, tzinfo]
) -> list[str]:
    """snoozed -> due at `until`; the escalation window restarts (unless it already escalated). No second
    delivery event: the reminder is back on the worklist, and escalates if nobody acts."""
    if not items:
        return []
    restart = case((_c.escalated_at.is_not(None), None), else_=_escalation_case(items, now, zones))
    return _changed(
        uow,
        update(_table)
        .where(_still_ours([i.id for i in items], worker_id, t.SNOOZED, now))
        .values(status=t.DUE, snoozed_until=None, next_action_at=restart, updated_at=now, **_RELEASED),
    )


def _escalate(uow: UnitOfWork, items: list[Claimed], worker_id: str, now: datetime) -> list[str]:
    """due and unacknowledged past its window -> escalated_at marker (status stays due)."""
    if not items:
        return []
    ours = _still_ours([i.id for i in items], worker_id, t.DUE, now)
    return _changed(
        uow,
        update(_table)
        .where(ours, _c.escalated_at.is_(None))
        .values(escalated_at=now, next_action_at=None, updated_at=now, **_RELEASED),
    )


def _event_data(item: Claimed, now: datetime, field: str) -> dict[str, Any]:
    data = {
        "reminder_id": item.id,
        "org": item.org,
        "patient_id": item.patient_id,
        "kind": item.kind,
        "due_at": isoformat(item.due_at),
        field: isoformat(now),
    }
    if item.origin == ORIGIN_RULE_CHANGE:  # codes only: receivers can tell a rule change from a slip
        data.update(origin=item.origin, origin_rule_set_version=item.origin_rule_set_version)
    if item.assigned_to is not None:  # the owner's subject id (no name): who is handling it
        data["assigned_to"] = item.assigned_to
    return data


def _due_event(item: Claimed, now: datetime, context: Any = None) -> Event:
    return Event(
        REMINDER_DUE,
        SOURCE_SCHEDULER,
        item.patient_id,
        _event_data(item, now, "delivered_at"),
        id=delivery_event_id(item.patient_id, item.kind, item.due_at),
        time=now,
        trace_context=context,
    )


def _escalated_event(item: Claimed, now: datetime, context: Any = None) -> Event:
    return Event(
        REMINDER_ESCALATED,
        SOURCE_SCHEDULER,
        item.patient_id,
        _event_data(item, now, "escalated_at"),
        id=escalation_event_id(item.id),
        time=now,
        trace_context=context,
    )


def act(uow: UnitOfWork, claimed: list[Claimed], worker_id: str, now: datetime) -> dict[str, int]:
    """Apply what each claimed reminder needs: one conditional UPDATE per action, then its events (outbox)
    and history rows, all in this transaction. No commit."""
    by_status: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        by_status[item.status].append(item)
    by_id = {item.id: item for item in claimed}
    actor = f"{t.ACTOR_SCHEDULER_PREFIX}:{worker_id}"
    zones = orgtime.zones_of(uow, [item.org for item in claimed if item.status in (t.SCHEDULED, t.SNOOZED)])
    delivered = _deliver(uow, by_status[t.SCHEDULED], worker_id, now, zones)
    unsnoozed = _unsnooze(uow, by_status[t.SNOOZED], worker_id, now, zones)
    escalated = _escalate(uow, by_status[t.DUE], worker_id, now)
    for rid in delivered:  # delivered_at - due_at: how late the scheduler delivers
        REMINDER_LATENESS.observe(max((now - by_id[rid].due_at).total_seconds(), 0.0))
    REMINDERS_DELIVERED.inc(len(delivered))
    ESCALATIONS.inc(len(escalated))
    # Each event continues the trace of the consumer that created its reminder (linked to this pass's span).
    spans = {rid: start_continued_span("reminder due", by_id[rid].traceparent) for rid in delivered}
    spans |= {rid: start_continued_span("reminder escalated", by_id[rid].traceparent) for rid in escalated}
    try:
        uow.publish_many(
            [_due_event(by_id[rid], now, set_span_in_context(spans[rid])) for rid in delivered]
            + [_escalated_event(by_id[rid], now, set_span_in_context(spans[rid])) for rid in escalated]
        )
    finally:
        for span in spans.values():
            span.end()
    t.record(
        uow,
        [t.history_row(rid, t.SCHEDULED, t.DUE, actor, now, reason="due") for rid in delivered]
        + [t.history_row(rid, t.SNOOZED, t.DUE, actor, now, reason="snooze_ended") for rid in unsnoozed]
        + [t.history_row(rid, t.DUE, t.DUE, actor, now, reason="escalated") for rid in escalated],
    )
    return {"delivered": len(delivered), "unsnoozed": len(unsnoozed), "escalated": len(escalated)}


def lock_in_id_order(uow: UnitOfWork, claimed: list[Claimed]) -> None:
    """PostgreSQL: take the row locks in id order, as reconciliation does, so the two never deadlock."""
    if claimed and not uow.is_sqlite:
        uow.session.execute(
            select(_c.id).where(_c.id.in_([c.id for c in claimed])).order_by(_c.id).with_for_update()
        ).all()
