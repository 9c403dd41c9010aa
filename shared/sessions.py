"""Server-side sessions of the worklist (browser sign-in), checked in the database on every request.

The browser's cookie holds 256 random bits; the table keeps only their SHA-256 (`secret_hash`), so a
database read does not yield a usable cookie. A session ends at the first of: its absolute timeout
(`CAREPATH_SESSION_ABSOLUTE_HOURS` after sign-in), its idle timeout (`CAREPATH_SESSION_IDLE_MINUTES`
without a request), logout, or `carepath session revoke` (the row is deleted: every process refuses it at
its next request). Sign-in always creates a new session (and deletes the one the browser carried): no
session fixation. The API never reads this cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import col

from shared.auth import ORG_PATTERN, ROLES, SUBJECT_PATTERN, Principal
from shared.clock import as_utc, isoformat, utcnow
from shared.db.tables import WorklistSession
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings

COOKIE = "carepath_session"
METHODS = ("oidc", "token")


@dataclass(frozen=True)
class Started:
    secret: str  # the cookie's value (shown to nobody else, never stored)
    session_id: str
    principal: Principal


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _ends(settings: Settings, row: WorklistSession, now: datetime) -> datetime:
    return min(as_utc(row.expires_at), as_utc(row.last_seen_at) + timedelta(minutes=settings.session_idle_minutes))


def _principal(row: WorklistSession, ends: datetime) -> Principal:
    return Principal(org=row.org, role=row.role, subject=row.subject, token_id=row.id, expires_at=ends)


def start(
    settings: Settings, org: str, role: str, subject: str, method: str, *, replaces: str | None = None
) -> Started:
    """A new session (and the end of `replaces`, the session cookie the browser had before signing in)."""
    if role not in ROLES or not ORG_PATTERN.fullmatch(org) or not SUBJECT_PATTERN.fullmatch(subject):
        raise ValueError("a session needs a valid organisation, role and subject")
    if method not in METHODS:
        raise ValueError("unknown sign-in method")
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    row = WorklistSession(
        secret_hash=_hash(secret),
        org=org,
        subject=subject,
        role=role,
        method=method,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
    )
    with UnitOfWork(settings) as uow:
        if replaces:
            uow.session.execute(delete(WorklistSession).where(col(WorklistSession.secret_hash) == _hash(replaces)))
        # Rows past their absolute end are pruned here, at sign-in, rather than by a job.
        uow.session.execute(delete(WorklistSession).where(col(WorklistSession.expires_at) < now))
        uow.session.add(row)
        uow.commit()
        return Started(secret, row.id, _principal(row, _ends(settings, row, now)))


def current(settings: Settings, secret: str | None) -> Principal | None:
    """The principal of a live session (its idle clock restarted), or None (unknown, ended or malformed)."""
    if not secret or len(secret) > 100:
        return None
    now = utcnow()
    with UnitOfWork(settings) as uow:
        row = uow.session.execute(
            select(WorklistSession).where(col(WorklistSession.secret_hash) == _hash(secret))
        ).scalar_one_or_none()
        if row is None:
            return None
        if _ends(settings, row, now) <= now:
            uow.session.delete(row)
            uow.commit()
            return None
        uow.session.execute(update(WorklistSession).where(col(WorklistSession.id) == row.id).values(last_seen_at=now))
        row.last_seen_at = now
        principal = _principal(row, _ends(settings, row, now))
        uow.commit()
        return principal


def end(settings: Settings, secret: str) -> bool:
    """Logout: the session is deleted (True if there was one)."""
    with UnitOfWork(settings) as uow:
        result = uow.session.execute(delete(WorklistSession).where(col(WorklistSession.secret_hash) == _hash(secret)))
        uow.commit()
        return bool(getattr(result, "rowcount", 0))


def revoke(
    settings: Settings, *, session_id: str | None = None, subject: str | None = None, org: str | None = None
) -> int:
    """Delete the sessions matching every given filter (at least one); returns how many."""
    if session_id is None and subject is None and org is None:
        raise ValueError("name a session id, a subject or an organisation")
    statement = delete(WorklistSession)
    if session_id is not None:
        statement = statement.where(col(WorklistSession.id) == session_id)
    if subject is not None:
        statement = statement.where(col(WorklistSession.subject) == subject)
    if org is not None:
        statement = statement.where(col(WorklistSession.org) == org)
    with UnitOfWork(settings) as uow:
        result = uow.session.execute(statement)
        uow.commit()
        return int(getattr(result, "rowcount", 0) or 0)


def listing(settings: Settings, *, org: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
    now = utcnow()
    statement = select(WorklistSession).order_by(col(WorklistSession.created_at))
    if org is not None:
        statement = statement.where(col(WorklistSession.org) == org)
    if subject is not None:
        statement = statement.where(col(WorklistSession.subject) == subject)
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(statement.where(col(WorklistSession.expires_at) > now)).scalars())
        return [
            {
                "id": row.id,
                "org": row.org,
                "subject": row.subject,
                "role": row.role,
                "method": row.method,
                "created_at": isoformat(as_utc(row.created_at)),
                "ends_at": isoformat(_ends(settings, row, now)),
            }
            for row in rows
            if _ends(settings, row, now) > now
        ]


def cmd_list(args: Any) -> int:
    import json

    for item in listing(get_settings(), org=args.org, subject=args.subject):
        print(json.dumps(item, sort_keys=True))
    return 0


def cmd_revoke(args: Any) -> int:
    try:
        count = revoke(get_settings(), session_id=args.id, subject=args.subject, org=args.org)
    except ValueError as problem:
        print(f"carepath session revoke: {problem}", file=sys.stderr)
        return 2
    print(f"{count} session(s) revoked")
    return 0


def add_commands(sub: Any) -> None:
    """`carepath session list [--org] [--subject]`, `carepath session revoke [--id] [--subject] [--org]`."""
    session = sub.add_parser("session", help="worklist sign-in sessions").add_subparsers(
        dest="session_command", required=True
    )
    listed = session.add_parser("list", help="live sessions as JSON lines (ids, never the cookie)")
    listed.add_argument("--org")
    listed.add_argument("--subject")
    listed.set_defaults(func=cmd_list)
    revoked = session.add_parser("revoke", help="end sessions at once on every process (filters combine)")
    revoked.add_argument("--id", help="a session id (from `carepath session list` or the audit trail)")
    revoked.add_argument("--subject", help="every session of this subject")
    revoked.add_argument("--org", help="every session of this organisation")
    revoked.set_defaults(func=cmd_revoke)
