"""Reminder routes (thin): parse, check identity and role, call one handler, map errors.

Every route is scoped to the token's organisation: another organisation's reminder is 404.
Any role may read; coordinators and ops may act.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.notifications import ics, lifecycle, queries
from shared import orgtime
from shared.audit import AuditTrail
from shared.auth import SUBJECT_PATTERN, Principal, require, require_feed
from shared.clock import utcnow
from shared.db.tables.reminders import STATUSES
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.web import check_instant, no_nul_characters

router = APIRouter(prefix="/v1", tags=["reminders"], dependencies=[Depends(no_nul_characters)])

Reader = Annotated[Principal, Depends(require())]
Actor = Annotated[Principal, Depends(require("coordinator", "ops"))]
ReminderId = Annotated[str, Path(min_length=1, max_length=36)]

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or expired token"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
_READ: dict[int | str, dict[str, Any]] = {**_AUTH, 422: {"description": "invalid parameters"}}
_ONE: dict[int | str, dict[str, Any]] = {
    **_READ,
    404: {"description": "no such reminder in your organisation"},
}
_ACT: dict[int | str, dict[str, Any]] = {
    **_ONE,
    403: {"description": "your role may not act on reminders"},
    409: {"description": "the transition makes no sense from the reminder's status"},
}


class SourceItem(BaseModel):
    code: str
    title: str
    url: str | None


class ReminderItem(BaseModel):
    id: str
    patient_id: str
    kind: str
    due_at: str
    status: str
    text: str
    citation: str
    delivered_at: str | None
    escalated_at: str | None
    snoozed_until: str | None
    fact_ids: list[str]
    sources: list[SourceItem] | None = Field(
        None, description="the citation codes resolved to their sources; null when the pathway sent none"
    )
    origin: str = Field("pathway", description="pathway, or rule_change: created (or reopened) by a change of rule set")
    origin_rule_set_version: str | None = Field(None, description="the rule set whose change created it")
    assigned_to: str | None = Field(None, description="the subject id of the coordinator who owns it (null: nobody)")
    assigned_at: str | None = Field(None, description="when it was given to its current owner")


class ReminderPage(BaseModel):
    items: list[ReminderItem]
    next_cursor: str | None


class TransitionItem(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    at: str
    reason: str | None
    comment: str | None
    details: dict[str, Any]


class ReminderDetail(ReminderItem):
    dismiss_reason: str | None
    dismiss_comment: str | None
    history: list[TransitionItem]


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime
    reason: str | None = Field(None, max_length=lifecycle.MAX_SNOOZE_REASON)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(
        description="a coordinator's subject id (yourself, or someone who signed in to the worklist), "
        "or null to unassign",
        min_length=1,
        max_length=200,
        pattern=f"^{SUBJECT_PATTERN.pattern}$",
    )


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        pattern=lifecycle.REASON_CODE.pattern,
        description="a reason code, e.g. " + ", ".join(r.value for r in lifecycle.DismissReason),
    )
    comment: str | None = Field(None, max_length=lifecycle.MAX_COMMENT)


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["query", field], "msg": message, "type": "value_error"}],
    )


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except lifecycle.ReminderNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="reminder not found") from None
    except lifecycle.InvalidTransition as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    except lifecycle.InvalidRequest as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None


def _parse_statuses(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    wanted = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in STATUSES]
    if not wanted or unknown:
        raise _unprocessable("status", f"status must be one or more (comma-separated) of {', '.join(STATUSES)}")
    return wanted


@router.get("/reminders", response_model=ReminderPage, responses=_READ)
def list_reminders(
    principal: Reader,
    trail: AuditTrail,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=200)] = None,
    kind: Annotated[str | None, Query(max_length=60, pattern=r"^[a-z0-9_]+$")] = None,
    due_before: Annotated[AwareDatetime | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    assigned_to: Annotated[
        str | None, Query(max_length=200, pattern=f"^{SUBJECT_PATTERN.pattern}$", description="the owner's subject id")
    ] = None,
) -> dict[str, Any]:
    with trail.failures(principal, "reminder.list", patient_id=patient_id):
        statuses = _parse_statuses(status_)
        check_instant(due_before, ("query", "due_before"))
        with UnitOfWork(read_only=True) as uow:
            try:
                items, next_cursor = queries.list_reminders(
                    uow,
                    principal.org,
                    patient_id=patient_id,
                    status=statuses,
                    kind=kind,
                    due_before=due_before,
                    cursor=cursor,
                    limit=limit,
                    assigned_to=assigned_to,
                )
            except queries.InvalidCursor as error:
                raise _unprocessable("cursor", str(error)) from None
            page = {"items": [queries.reminder_view(r) for r in items], "next_cursor": next_cursor}
            shown = [r.patient_id for r in items]
        # One row per patient whose reminders the page shows (one without a patient for an empty page).
        trail.read(principal, "reminder.list", patient_ids=shown)
        return page


@router.get(
    "/reminders.ics",
    response_class=Response,
    responses={
        401: {"description": "missing, invalid, expired or revoked feed token (API tokens are refused here)"},
        429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
        200: {"content": {"text/calendar": {}}, "description": "iCalendar feed"},
    },
)
def reminders_calendar(
    request: Request,
    principal: Annotated[Principal, Depends(require_feed())],
    trail: AuditTrail,
    token: Annotated[str | None, Query(max_length=4000, description="a feed token (`carepath token feed`)")] = None,
) -> Response:
    """Subscribable with a feed token as `?token=` (calendar apps cannot send headers); kinds, due times and
    ids only, no clinical text (the feed is stored by third-party calendar services)."""
    del token  # read by require_feed; declared so the document shows it
    worklist_url = (get_settings().public_base_url.rstrip("/") or str(request.base_url).rstrip("/")) + "/worklist"
    with UnitOfWork(read_only=True) as uow:
        reminders = ics.feed_reminders(uow, principal.org)
        body = ics.calendar_bytes(reminders, utcnow(), worklist_url, orgtime.zone_of(uow, principal.org))
        shown = [r.patient_id for r in reminders]
    trail.read(principal, "reminder.calendar_feed", patient_ids=shown)
    return Response(body, media_type="text/calendar; charset=utf-8", headers={"Cache-Control": "no-store"})


@router.get("/reminders/{reminder_id}", response_model=ReminderDetail, responses=_ONE)
def get_reminder(principal: Reader, reminder_id: ReminderId, trail: AuditTrail) -> dict[str, Any]:
    with trail.failures(principal, "reminder.read", resource=("reminder", reminder_id)):
        with UnitOfWork(read_only=True) as uow, _domain_errors():
            reminder = queries.get_reminder(uow, principal.org, reminder_id)
            detail = queries.reminder_detail_view(reminder, queries.history(uow, reminder.id))
            patient_id = reminder.patient_id
        trail.read(principal, "reminder.read", patient_id=patient_id, resource=("reminder", reminder_id))
        return detail


@router.post("/reminders/{reminder_id}/acknowledge", response_model=ReminderItem, responses=_ACT)
def acknowledge(principal: Actor, reminder_id: ReminderId, trail: AuditTrail) -> dict[str, Any]:
    with (
        trail.failures(principal, "reminder.acknowledge", resource=("reminder", reminder_id)),
        UnitOfWork() as uow,
        _domain_errors(),
    ):
        reminder = lifecycle.acknowledge(uow, principal, reminder_id)
        trail.write(
            uow, principal, "reminder.acknowledge", patient_id=reminder.patient_id, resource=("reminder", reminder.id)
        )
        uow.commit()
        return queries.reminder_view(reminder)


@router.post("/reminders/{reminder_id}/complete", response_model=ReminderItem, responses=_ACT)
def complete(principal: Actor, reminder_id: ReminderId, trail: AuditTrail) -> dict[str, Any]:
    with (
        trail.failures(principal, "reminder.complete", resource=("reminder", reminder_id)),
        UnitOfWork() as uow,
        _domain_errors(),
    ):
        reminder = lifecycle.complete(uow, principal, reminder_id)
        trail.write(
            uow, principal, "reminder.complete", patient_id=reminder.patient_id, resource=("reminder", reminder.id)
        )
        uow.commit()
        return queries.reminder_view(reminder)


@router.post("/reminders/{reminder_id}/snooze", response_model=ReminderItem, responses=_ACT)
def snooze(principal: Actor, reminder_id: ReminderId, body: SnoozeIn, trail: AuditTrail) -> dict[str, Any]:
    check_instant(body.until, ("body", "until"))
    with (
        trail.failures(principal, "reminder.snooze", resource=("reminder", reminder_id)),
        UnitOfWork() as uow,
        _domain_errors(),
    ):
        reminder = lifecycle.snooze(uow, principal, reminder_id, body.until, body.reason)
        trail.write(
            uow, principal, "reminder.snooze", patient_id=reminder.patient_id, resource=("reminder", reminder.id)
        )
        uow.commit()
        return queries.reminder_view(reminder)


@router.post("/reminders/{reminder_id}/dismiss", response_model=ReminderItem, responses=_ACT)
def dismiss(principal: Actor, reminder_id: ReminderId, body: DismissIn, trail: AuditTrail) -> dict[str, Any]:
    with (
        trail.failures(principal, "reminder.dismiss", resource=("reminder", reminder_id)),
        UnitOfWork() as uow,
        _domain_errors(),
    ):
        reminder = lifecycle.dismiss(uow, principal, reminder_id, body.reason, body.comment)
        trail.write(
            uow, principal, "reminder.dismiss", patient_id=reminder.patient_id, resource=("reminder", reminder.id)
        )
        uow.commit()
        return queries.reminder_view(reminder)


@router.post("/reminders/{reminder_id}/assign", response_model=ReminderItem, responses=_ACT)
def assign(principal: Actor, reminder_id: ReminderId, body: AssignIn, trail: AuditTrail) -> dict[str, Any]:
    """Give the reminder to a coordinator (`assignee`: a subject id) or to nobody (`null`); recorded in its
    history. 422 for a subject who never signed in to this organisation's worklist, 409 for a closed one."""
    with (
        trail.failures(principal, "reminder.assign", resource=("reminder", reminder_id)),
        UnitOfWork() as uow,
        _domain_errors(),
    ):
        reminder = lifecycle.assign(uow, principal, reminder_id, body.assignee)
        trail.write(
            uow, principal, "reminder.assign", patient_id=reminder.patient_id, resource=("reminder", reminder.id)
        )
        uow.commit()
        return queries.reminder_view(reminder)
