"""Idempotency-Key semantics (contract.md): same key + same body → the first response again; same key +
different body → 422; same key while the first request is in flight → 409.

The key is claimed in its own short transaction (state in_flight) so a concurrent duplicate sees it;
the response is stored in the same transaction as the work it describes. A claim left behind by a
crashed process expires after IN_FLIGHT_TIMEOUT and may be taken over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from shared.clock import utcnow
from shared.db.tables import IdempotencyRecord
from shared.db.uow import UnitOfWork
from shared.settings import Settings

IN_FLIGHT_TIMEOUT = timedelta(seconds=60)


class KeyInFlight(Exception):
    pass


class KeyReusedWithOtherBody(Exception):
    pass


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps({"m": method, "p": path, "b": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing(uow: UnitOfWork, org: str, key: str) -> IdempotencyRecord | None:
    query = select(IdempotencyRecord).where(col(IdempotencyRecord.org) == org, col(IdempotencyRecord.key) == key)
    return uow.session.execute(query).scalar_one_or_none()


def _judge(record: IdempotencyRecord, digest: str) -> Replay | None:
    if record.request_hash != digest:
        raise KeyReusedWithOtherBody()
    if record.state == "done":
        return Replay(record.status_code or 200, record.response or {})
    if utcnow() - record.created_at < IN_FLIGHT_TIMEOUT:
        raise KeyInFlight()
    return None  # abandoned claim: take it over


def claim(settings: Settings, org: str, key: str, digest: str) -> Replay | None:
    """Claim `key` for this request, or return the stored response to replay."""
    with UnitOfWork(settings) as uow:
        record = _existing(uow, org, key)
        if record is not None:
            replay = _judge(record, digest)
            if replay is not None:
                return replay
            record.created_at = utcnow()
            uow.commit()
            return None
        uow.session.add(
            IdempotencyRecord(org=org, key=key, request_hash=digest, state="in_flight", created_at=utcnow())
        )
        try:
            uow.commit()
        except IntegrityError:
            uow.rollback()
            raced = _existing(uow, org, key)
            return _judge(raced, digest) if raced else None
    return None


def complete(uow: UnitOfWork, org: str, key: str, status_code: int, body: dict[str, Any]) -> None:
    """Record the response in the caller's transaction (with the work it describes)."""
    uow.session.execute(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.org) == org, col(IdempotencyRecord.key) == key)
        .values(state="done", status_code=status_code, response=body)
    )


def release(settings: Settings, org: str, key: str) -> None:
    """The request failed and stored nothing: forget the claim so a corrected retry can use the key."""
    with UnitOfWork(settings) as uow:
        uow.session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.org) == org,
                col(IdempotencyRecord.key) == key,
                col(IdempotencyRecord.state) == "in_flight",
            )
        )
        uow.commit()
