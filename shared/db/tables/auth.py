"""Revoked API and feed tokens: one row per revoked token id (`jti`), looked up on every request by its
primary key. A row is needed only until the token would have expired anyway; `expires_at` lets the revoke
command delete the rows that no longer matter."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from shared.db.tables.base import utc_field


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_token"

    jti: str = Field(primary_key=True, max_length=64)
    revoked_at: datetime = utc_field()
    # When the token expires (or, revoked by id alone, the longest lifetime any token may have).
    expires_at: datetime = utc_field(index=True)
    # Who revoked it ("cli", "logout"): operational context only, never a token or a patient value.
    reason: str = Field(max_length=40)
