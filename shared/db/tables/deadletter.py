"""Events a consumer could not handle after repeated attempts (or could never handle: malformed, or of a
type it does not consume), parked so that the other events keep flowing and an operator can replay them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db.tables.base import json_field, utc_field


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letter"
    __table_args__ = (UniqueConstraint("consumer", "event_key", name="uq_dead_letter_consumer_event"),)

    id: int | None = Field(default=None, primary_key=True)
    consumer: str = Field(max_length=40)
    # the event id, or for a message that is no event at all a digest of its body
    event_key: str = Field(max_length=64)
    event_type: str | None = Field(default=None, max_length=80)
    outbox_id: int | None = None
    envelope: dict[str, Any] = json_field()
    reason: str = Field(max_length=40)  # handler_failed | malformed | unknown_type
    error: str = Field(max_length=300)  # the exception's type and message (no request values)
    attempts: int = 0
    first_failed_at: datetime = utc_field()
    last_failed_at: datetime = utc_field()
    parked_at: datetime | None = utc_field(nullable=True, index=True)
    retried_at: datetime | None = utc_field(nullable=True)
