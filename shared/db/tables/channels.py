"""Notification channels per organisation (webhook endpoints, email recipients) and their deliveries.

A delivery is one event for one target. Time lives here: `next_attempt_at` says when the dispatcher
should (re)try it, and a claim pushes it forward by a lease so a crashed dispatcher's work comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db.tables.base import json_field, new_id, utc_field


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100, index=True)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=200)
    # False: receives carepath.reminder.due; True: the organisation's escalation channel (escalated events).
    escalation: bool = False
    status: str = Field(default="active", max_length=20)  # active | disabled | deleted
    # whsec_…, stored encrypted ("sealed:" + Fernet token, channels/config.py): HMAC needs the secret itself,
    # so it cannot be hashed.
    secret: str = Field(max_length=400)
    previous_secret: str | None = Field(default=None, max_length=400)
    previous_secret_expires_at: datetime | None = utc_field(nullable=True)
    failing_since: datetime | None = utc_field(nullable=True)
    disabled_at: datetime | None = utc_field(nullable=True)
    disabled_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class EmailRecipient(SQLModel, table=True):
    __tablename__ = "email_recipient"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100, index=True)
    address: str = Field(max_length=320)
    escalation: bool = False
    status: str = Field(default="active", max_length=20)  # active | deleted
    created_at: datetime = utc_field()


class ChannelDelivery(SQLModel, table=True):
    """One event for one webhook endpoint or email recipient, retried until delivered or given up."""

    __tablename__ = "channel_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "target_id", name="uq_channel_delivery_event_target"),
        # The dispatcher's sweep: pending rows whose next attempt is due.
        Index("ix_channel_delivery_pending", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64, unique=True)  # the webhook-id: the same on every retry
    org: str = Field(max_length=100)
    channel: str = Field(max_length=20)  # webhook | email
    target_id: str = Field(max_length=36)  # webhook_endpoint.id or email_recipient.id
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=80)
    reminder_id: str | None = Field(default=None, max_length=36, index=True)
    payload: dict[str, Any] = json_field()
    status: str = Field(default="pending", max_length=20)  # pending | delivered | failed | cancelled
    attempts: int = 0
    next_attempt_at: datetime | None = utc_field(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=80)
    last_attempt_at: datetime | None = utc_field(nullable=True)
    last_error: str | None = Field(default=None, max_length=300)
    last_status_code: int | None = None
    delivered_at: datetime | None = utc_field(nullable=True)
    # W3C traceparent of the consumer span that recorded it: the dispatcher's send continues that trace.
    traceparent: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_field()
