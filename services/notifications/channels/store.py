"""Database access of the channels: targets of an event, the due-delivery claim, outcomes. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select, update
from sqlmodel import col

from shared.db.tables import ChannelDelivery, EmailRecipient, Reminder, WebhookEndpoint
from shared.db.uow import UnitOfWork

ACTIVE = "active"
DISABLED = "disabled"
DELETED = "deleted"
PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
HELD = "held"  # over the patient's daily notification cap: never sent (the worklist still shows the reminder)
WEBHOOK, EMAIL = "webhook", "email"

_delivery = ChannelDelivery.__table__  # type: ignore[attr-defined]


def active_endpoints(uow: UnitOfWork, org: str, *, escalation: bool) -> list[WebhookEndpoint]:
    statement = select(WebhookEndpoint).where(
        col(WebhookEndpoint.org) == org,
        col(WebhookEndpoint.status) == ACTIVE,
        col(WebhookEndpoint.escalation) == escalation,
    )
    return list(uow.session.execute(statement.order_by(col(WebhookEndpoint.created_at))).scalars())


def active_recipients(uow: UnitOfWork, org: str, *, escalation: bool) -> list[EmailRecipient]:
    statement = select(EmailRecipient).where(
        col(EmailRecipient.org) == org,
        col(EmailRecipient.status) == ACTIVE,
        col(EmailRecipient.escalation) == escalation,
    )
    return list(uow.session.execute(statement.order_by(col(EmailRecipient.created_at))).scalars())


def claim_due(uow: UnitOfWork, now: datetime, lease_until: datetime, token: str, limit: int) -> list[int]:
    """Claim up to `limit` pending deliveries due at `now`: one UPDATE … WHERE id IN (SELECT … SKIP LOCKED)
    … RETURNING. The claim moves next_attempt_at to the lease end, so a dead dispatcher's rows come back."""
    due = (
        select(_delivery.c.id)
        .where(_delivery.c.status == PENDING, _delivery.c.next_attempt_at <= now)
        .order_by(_delivery.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers
    )
    statement = (
        update(_delivery)
        .where(_delivery.c.id.in_(due.scalar_subquery()))
        .values(claimed_by=token, next_attempt_at=lease_until)
        .returning(_delivery.c.id)
    )
    return sorted(uow.session.execute(statement).scalars())


def claimed(uow: UnitOfWork, delivery_id: int, token: str) -> ChannelDelivery | None:
    """The delivery if this dispatcher still holds its claim (fencing: a lost lease records nothing)."""
    statement = (
        select(ChannelDelivery)
        .where(col(ChannelDelivery.id) == delivery_id, col(ChannelDelivery.claimed_by) == token)
        .with_for_update()
    )
    return uow.session.execute(statement).scalar_one_or_none()


def lock_endpoint(uow: UnitOfWork, endpoint_id: str) -> WebhookEndpoint | None:
    statement = select(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id).with_for_update()
    return uow.session.execute(statement).scalar_one_or_none()


def target_of(uow: UnitOfWork, delivery: ChannelDelivery) -> WebhookEndpoint | EmailRecipient | None:
    table: Any = WebhookEndpoint if delivery.channel == WEBHOOK else EmailRecipient
    return uow.session.get(table, delivery.target_id)


def close_pending_for(uow: UnitOfWork, target_id: str, status: str, reason: str, now: datetime) -> None:
    """Give up every pending delivery of a target (disabled: failed; deleted: cancelled)."""
    uow.session.execute(
        update(_delivery)
        .where(_delivery.c.target_id == target_id, _delivery.c.status == PENDING)
        .values(status=status, last_error=reason[:300], next_attempt_at=None, claimed_by=None, last_attempt_at=now)
    )


def notified_today(uow: UnitOfWork, patient_id: str, day_start: datetime) -> int:
    """How many events about `patient_id` got deliveries (not held) since `day_start`: the daily cap's count."""
    reminder = Reminder.__table__  # type: ignore[attr-defined]
    statement = (
        select(func.count(distinct(_delivery.c.event_id)))
        .select_from(_delivery.join(reminder, reminder.c.id == _delivery.c.reminder_id))
        .where(reminder.c.patient_id == patient_id, _delivery.c.created_at >= day_start, _delivery.c.status != HELD)
    )
    return int(uow.session.execute(statement).scalar_one())
