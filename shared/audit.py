"""The audit trail (HIPAA §164.312(b)): who read or changed which patient's data, when, through which route,
and with what outcome. Rows go to the append-only `audit_event` table (triggers refuse UPDATE and DELETE).

- A change is recorded with `record(uow, …)` in the unit of work that makes it: both commit, or neither.
- A read is recorded after it, in its own short transaction (`record_now`), as is any refusal (401, 403,
  404, 422, 429) and a failed write (whose own transaction rolled back).
- Routes take the per-request helper `Audit` as a dependency (`AuditTrail`): it knows the route template
  and the request id, so a route says only what it did (`audit.write(uow, principal, "patient.create",
  patient_id=…)`) and wraps its work in `audit.failures(…)` to have refusals recorded.

Nothing but identifiers is stored: actor (subject, role), organisation, action, patient id, resource type
and id, the route *template* and the request id. Never a request body, an MRN or a clinical value.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import insert, select
from starlette.concurrency import run_in_threadpool

from shared.clock import isoformat, utcnow
from shared.db.tables import AuditEvent, table_of
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.auth import Principal

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
# Carepath's own ids (UUIDs, digits): anything else offered as a patient id (a typo, an MRN pasted into a
# URL) is not stored.
_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
SUCCESS, DENIED, NOT_FOUND, INVALID, ERROR = "success", "denied", "not_found", "invalid", "error"


@dataclass(frozen=True)
class Actor:
    subject: str
    role: str
    org: str | None


ANONYMOUS = Actor("-", "anonymous", None)


def system_actor(component: str, org: str | None) -> Actor:
    """A process acting on its own (the dispatcher sending a webhook)."""
    return Actor(component, "system", org)


def actor_of(principal: Principal | Actor | None) -> Actor:
    if principal is None:
        return ANONYMOUS
    if isinstance(principal, Actor):
        return principal
    return Actor(principal.subject, principal.role, principal.org)


def request_id(request: Request) -> str:
    """The request's id: the one a middleware already set on `request.state`, else a well-formed
    X-Request-ID header, else a new one; stored on `request.state` so every later caller sees the same."""
    existing = getattr(request.state, "request_id", None)
    if isinstance(existing, str) and existing:
        return existing
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    value = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    request.state.request_id = value
    return value


def route_of(request: Request) -> str:
    """`METHOD /template` (the route's template, never the concrete path with its ids)."""
    template = getattr(request.scope.get("route"), "path", None) or "unmatched"
    return f"{request.method} {template}"[:200]


def outcome_of(status_code: int) -> str:
    if status_code < 400:
        return SUCCESS
    if status_code in (401, 403, 429):
        return DENIED
    if status_code == 404:
        return NOT_FOUND
    if status_code < 500:
        return INVALID
    return ERROR


def safe_id(value: object) -> str | None:
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _rows(
    actor: Actor,
    action: str,
    *,
    outcome: str,
    route: str,
    request_id: str | None,
    patient_ids: Iterable[str | None],
    resource: tuple[str, str | None] | None,
    status_code: int | None,
) -> list[dict[str, Any]]:
    now = utcnow()
    resource_type, resource_id = resource if resource else (None, None)
    return [
        {
            "at": now,
            "actor_subject": actor.subject[:200],
            "actor_role": actor.role[:20],
            "org": actor.org,
            "action": action[:60],
            "outcome": outcome,
            "patient_id": safe_id(patient_id),
            "resource_type": resource_type,
            "resource_id": safe_id(resource_id) if resource_id else None,
            "route": route[:200],
            "request_id": request_id,
            "status_code": status_code,
        }
        for patient_id in dict.fromkeys(patient_ids)  # one row per distinct patient, in order
    ]


def record(
    uow: UnitOfWork,
    principal: Principal | Actor | None,
    action: str,
    *,
    route: str,
    outcome: str = SUCCESS,
    patient_id: str | None = None,
    patient_ids: Iterable[str] | None = None,
    resource: tuple[str, str | None] | None = None,
    request_id: str | None = None,
    status_code: int | None = None,
) -> None:
    """Add audit rows to `uow`'s transaction: one, or one per patient of `patient_ids` (a page that shows
    several patients; none shown is still one row, without a patient)."""
    ids: list[str | None] = list(patient_ids) if patient_ids is not None else [patient_id]
    rows = _rows(
        actor_of(principal),
        action,
        outcome=outcome,
        route=route,
        request_id=request_id,
        patient_ids=ids or [None],
        resource=resource,
        status_code=status_code,
    )
    insert_rows(uow, rows)


def insert_rows(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """Audit rows (from `Audit.rows`) in `uow`'s transaction, with one INSERT."""
    if rows:
        uow.session.execute(insert(table_of(AuditEvent)), rows)


def record_now(settings: Settings | None, principal: Principal | Actor | None, action: str, **fields: Any) -> None:
    """`record` in a transaction of its own (reads, refusals, failed writes)."""
    with UnitOfWork(settings or get_settings()) as uow:
        record(uow, principal, action, **fields)
        uow.commit()


class Audit:
    """The audit trail of one request: route template and request id filled in."""

    def __init__(self, request: Request) -> None:
        self.route = route_of(request)
        self.request_id = request_id(request)

    def write(self, uow: UnitOfWork, principal: Principal | Actor | None, action: str, **fields: Any) -> None:
        """A change, recorded in the transaction that makes it."""
        record(uow, principal, action, route=self.route, request_id=self.request_id, **fields)

    def rows(
        self,
        principal: Principal | Actor | None,
        action: str,
        *,
        patient_id: str | None = None,
        resource: tuple[str, str | None] | None = None,
        outcome: str = SUCCESS,
    ) -> list[dict[str, Any]]:
        """The rows `write` would add, for a caller that inserts many requests' rows at once (group commit)."""
        return _rows(
            actor_of(principal),
            action,
            outcome=outcome,
            route=self.route,
            request_id=self.request_id,
            patient_ids=[patient_id],
            resource=resource,
            status_code=None,
        )

    def read(self, principal: Principal | Actor | None, action: str, **fields: Any) -> None:
        """A read (or any outcome without a transaction of its own), in a short transaction."""
        record_now(None, principal, action, route=self.route, request_id=self.request_id, **fields)

    @contextmanager
    def failures(
        self,
        principal: Principal | Actor | None,
        action: str,
        *,
        patient_id: str | None = None,
        resource: tuple[str, str | None] | None = None,
    ) -> Iterator[None]:
        """Record a refusal or failure raised inside (HTTPException, 422 validation, anything else: error),
        then let it propagate. Success is the block's own business (`write` or `read`)."""
        try:
            yield
        except Exception as failure:
            outcome, status_code = failure_outcome(failure)
            self.read(
                principal, action, outcome=outcome, status_code=status_code, patient_id=patient_id, resource=resource
            )
            raise

    @asynccontextmanager
    async def async_failures(
        self, principal: Principal | Actor | None, action: str, *, patient_id: str | None = None
    ) -> AsyncIterator[None]:
        """`failures` for an async route: the same rows, written from the thread pool (never on the loop)."""
        try:
            yield
        except Exception as failure:
            outcome, status_code = failure_outcome(failure)
            await run_in_threadpool(
                self.read, principal, action, outcome=outcome, status_code=status_code, patient_id=patient_id
            )
            raise


def failure_outcome(failure: Exception) -> tuple[str, int]:
    """(outcome, status) of a request that raised `failure`: an HTTPException's own status (refused or
    invalid), 422 for a validation error, else an error (500)."""
    if isinstance(failure, HTTPException):
        return outcome_of(failure.status_code), failure.status_code
    if isinstance(failure, RequestValidationError):
        return INVALID, 422
    return ERROR, 500


async def audit_trail(request: Request) -> Audit:
    """Async: it does no I/O, and a sync dependency costs a trip through the thread pool per request."""
    return Audit(request)


AuditTrail = Annotated[Audit, Depends(audit_trail)]


def export(
    settings: Settings, *, org: str | None = None, since: datetime | None = None, patient_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """The audit rows, oldest first, as the JSON objects `carepath audit export` prints."""
    table = table_of(AuditEvent)
    statement = select(table).order_by(table.c.id)
    if org is not None:
        statement = statement.where(table.c.org == org)
    if since is not None:
        statement = statement.where(table.c.at >= since)
    if patient_id is not None:
        statement = statement.where(table.c.patient_id == patient_id)
    with UnitOfWork(settings, read_only=True) as uow:
        for row in uow.session.execute(statement.execution_options(yield_per=1000)).mappings():
            yield {
                "time": isoformat(row["at"]),
                "actor": f"{row['actor_role']}:{row['actor_subject']}",
                "actor_subject": row["actor_subject"],
                "actor_role": row["actor_role"],
                "org": row["org"],
                "action": row["action"],
                "patient_id": row["patient_id"],
                "resource_type": row["resource_type"],
                "resource_id": row["resource_id"],
                "route": row["route"],
                "request_id": row["request_id"],
                "outcome": row["outcome"],
                "status_code": row["status_code"],
            }


def export_lines(settings: Settings, **filters: Any) -> Iterator[str]:
    for event in export(settings, **filters):
        yield json.dumps(event, separators=(",", ":"), sort_keys=True)


def _instant(value: str) -> datetime:
    from datetime import UTC

    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_export(args: Any) -> int:
    import sys

    from sqlalchemy.exc import OperationalError

    try:
        since = _instant(args.since) if args.since else None
    except ValueError:
        print("carepath audit export: --since must be an ISO 8601 instant (2026-12-01T00:00:00Z)", file=sys.stderr)
        return 2
    count = 0
    try:
        for line in export_lines(get_settings(), org=args.org, since=since, patient_id=args.patient):
            print(line)
            count += 1
    except OperationalError:
        print("carepath audit export: the database is unreachable", file=sys.stderr)
        return 1
    print(f"{count} audit event(s)", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """`carepath audit export [--org ORG] [--since T] [--patient ID]`: JSON lines, oldest first."""
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    export_parser = audit.add_parser("export", help="print audit events as JSON lines (oldest first)")
    export_parser.add_argument("--org", help="only this organisation's events")
    export_parser.add_argument("--since", help="only events at or after this ISO 8601 instant")
    export_parser.add_argument("--patient", help="only events about this patient id")
    export_parser.set_defaults(func=cmd_export)
