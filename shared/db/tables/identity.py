"""Worklist sign-in: each organisation's OpenID Connect provider, and the server-side sessions.

A session row is found by the SHA-256 of the random id the browser's cookie holds (the id itself is never
stored); `id` is a public handle for operators (`carepath session list / revoke`) and the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from shared.db.tables.base import new_id, utc_field


class OidcProvider(SQLModel, table=True):
    """One organisation's identity provider: issuer, client and how its claims map to carepath roles."""

    __tablename__ = "oidc_provider"

    org: str = Field(primary_key=True, max_length=100)
    issuer: str = Field(max_length=500)
    client_id: str = Field(max_length=200)
    client_secret_encrypted: str = Field(sa_type=Text)  # Fernet token (shared/encryption.py), never clear text
    role_claim: str = Field(max_length=100)  # e.g. "groups" or "roles": a string or a list of strings
    role_map: dict[str, Any] = Field(sa_type=JSON, nullable=False)  # claim value -> coordinator | ops
    scopes: str = Field(default="openid", max_length=300)
    updated_at: datetime = utc_field()


class WorklistSession(SQLModel, table=True):
    """A signed-in browser. Ends at `expires_at` (absolute), after the idle timeout since `last_seen_at`,
    on logout, or when revoked (the row is deleted)."""

    __tablename__ = "worklist_session"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    secret_hash: str = Field(max_length=64, unique=True)
    org: str = Field(max_length=100, index=True)
    subject: str = Field(max_length=200, index=True)
    role: str = Field(max_length=20)
    method: str = Field(max_length=20)  # oidc | token (development only)
    created_at: datetime = utc_field()
    last_seen_at: datetime = utc_field()
    expires_at: datetime = utc_field(index=True)
