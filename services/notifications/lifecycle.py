"""Coordinator actions on a reminder: acknowledge, complete, snooze, dismiss, and assign (ownership).

Each loads the reminder within the principal's organisation (another organisation's reminder is not
found), checks the transition against the state machine, changes the row and records who, when and why.
Nothing here commits: the caller's unit of work does.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlmodel import col

from services.notifications import transitions as t
from services.notifications.wakeup import wake_after_commit
from shared.auth import SUBJECT_PATTERN, Principal
from shared.clock import as_utc, utcnow
from shared.db.tables import Reminder, WorklistMember
from shared.db.tables.reminders import ACTIVE_STATUSES, CLOSED_BY_USER
from shared.db.uow import UnitOfWork

MAX_COMMENT = 1000
MAX_SNOOZE_REASON = 60


class ReminderNotFound(LookupError):
    """No such reminder in the caller's organisation (HTTP 404)."""


class InvalidTransition(Exception):
    """The action makes no sense from the reminder's current status (HTTP 409)."""

    def __init__(self, reminder_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} a reminder that is {status}")
        self.reminder_id = reminder_id
        self.status = status
        self.action = action


class InvalidRequest(ValueError):
    """A well-formed request with a value the domain refuses (HTTP 422): a past snooze, say."""


REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")


class DismissReason(StrEnum):
    """The codes the worklist offers; an API client may send any other code of the same form (an
    organisation's own reason codes), kept as given."""

    NOT_APPLICABLE = "not_applicable"
    DUPLICATE = "duplicate"
    ALREADY_DONE = "already_done"
    PATIENT_DECLINED = "patient_declined"
    OTHER = "other"


def load_for_update(uow: UnitOfWork, org: str, reminder_id: str) -> Reminder:
    """The reminder, row-locked on PostgreSQL (SQLite's writer already holds the database lock)."""
    statement = select(Reminder).where(col(Reminder.id) == reminder_id, col(Reminder.org) == org).with_for_update()
    reminder = uow.session.execute(statement).scalar_one_or_none()
    if reminder is None:
        raise ReminderNotFound(reminder_id)
    return reminder


def _transition(
    uow: UnitOfWork,
    principal: Principal,
    reminder_id: str,
    action: str,
    now: datetime,
    *,
    reason: str | None = None,
    comment: str | None = None,
    details: dict[str, str] | None = None,
) -> Reminder:
    reminder = load_for_update(uow, principal.org, reminder_id)
    target = t.target_status(action, reminder.status)
    if target is None:
        raise InvalidTransition(reminder.id, reminder.status, action)
    row = t.history_row(
        reminder.id,
        reminder.status,
        target,
        principal.actor,
        now,
        reason=reason,
        comment=comment,
        details=details,
    )
    reminder.status = target
    reminder.claimed_by = None  # a scheduler pass that claimed it earlier must not act on it any more
    reminder.claim_expires_at = None
    reminder.updated_at = now
    reminder.version += 1
    t.record(uow, [row])
    return reminder


def acknowledge(uow: UnitOfWork, principal: Principal, reminder_id: str, *, now: datetime | None = None) -> Reminder:
    now = now or utcnow()
    reminder = _transition(uow, principal, reminder_id, "acknowledge", now)
    reminder.snoozed_until = None
    reminder.next_action_at = None  # acknowledged: someone owns it, no escalation
    return _flushed(uow, reminder)


def complete(uow: UnitOfWork, principal: Principal, reminder_id: str, *, now: datetime | None = None) -> Reminder:
    now = now or utcnow()
    reminder = _transition(uow, principal, reminder_id, "complete", now)
    return _close(uow, reminder)


def snooze(
    uow: UnitOfWork,
    principal: Principal,
    reminder_id: str,
    until: datetime,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> Reminder:
    now = now or utcnow()
    if until.tzinfo is None:
        raise InvalidRequest("until must carry a UTC offset")
    if as_utc(until) <= now:
        raise InvalidRequest("until must be in the future")
    if reason is not None and len(reason) > MAX_SNOOZE_REASON:
        raise InvalidRequest(f"reason is at most {MAX_SNOOZE_REASON} characters")
    details = {"until": as_utc(until).isoformat()}
    reminder = _transition(uow, principal, reminder_id, "snooze", now, reason=reason, details=details)
    reminder.snoozed_until = as_utc(until)
    reminder.next_action_at = as_utc(until)  # the scheduler returns it to due then
    wake_after_commit(uow)
    return _flushed(uow, reminder)


def dismiss(
    uow: UnitOfWork,
    principal: Principal,
    reminder_id: str,
    reason: str,
    comment: str | None = None,
    *,
    now: datetime | None = None,
) -> Reminder:
    now = now or utcnow()
    code = str(reason)
    if not REASON_CODE.match(code):
        raise InvalidRequest("reason must be a code: lower-case letters, digits and _, e.g. not_applicable")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidRequest(f"comment is at most {MAX_COMMENT} characters")
    reminder = _transition(uow, principal, reminder_id, "dismiss", now, reason=code, comment=comment)
    reminder.dismiss_reason = code
    reminder.dismiss_comment = comment
    return _close(uow, reminder)


def _close(uow: UnitOfWork, reminder: Reminder) -> Reminder:
    """A coordinator's decision: terminal, and never overridden by reconciliation."""
    reminder.closed_by = CLOSED_BY_USER
    reminder.next_action_at = None
    reminder.snoozed_until = None
    return _flushed(uow, reminder)


def _flushed(uow: UnitOfWork, reminder: Reminder) -> Reminder:
    uow.session.flush()
    return reminder


ASSIGNABLE_ROLES = ("coordinator", "ops")
ASSIGNED, UNASSIGNED = "assigned", "unassigned"


def remember_member(uow: UnitOfWork, principal: Principal, *, now: datetime | None = None) -> None:
    """Note that this coordinator works the organisation's worklist (sign-in): they can be assigned work."""
    if principal.role not in ASSIGNABLE_ROLES:
        return
    now = now or utcnow()
    member = uow.session.get(WorklistMember, (principal.org, principal.subject))
    if member is None:
        member = WorklistMember(
            org=principal.org, subject=principal.subject, role=principal.role, first_seen_at=now, last_seen_at=now
        )
    member.role, member.last_seen_at = principal.role, now
    uow.session.add(member)
    uow.session.flush()


def members(uow: UnitOfWork, org: str) -> list[str]:
    """The subjects a reminder of the organisation can be assigned to, sorted."""
    statement = select(col(WorklistMember.subject)).where(col(WorklistMember.org) == org)
    return sorted(uow.session.execute(statement).scalars())


def assign(
    uow: UnitOfWork, principal: Principal, reminder_id: str, assignee: str | None, *, now: datetime | None = None
) -> Reminder:
    """Give an open reminder to a coordinator of the organisation (their subject id), or to nobody (None).
    Oneself may always be chosen; anyone else must have signed in to the organisation's worklist. The
    change is a history row (from = to = the status; details name the new and the previous assignee)."""
    now = now or utcnow()
    if assignee is not None:
        if not SUBJECT_PATTERN.fullmatch(assignee):
            raise InvalidRequest("assignee must be a coordinator's subject id")
        if assignee == principal.subject:
            remember_member(uow, principal, now=now)
        elif uow.session.get(WorklistMember, (principal.org, assignee)) is None:
            raise InvalidRequest("assignee is not a coordinator of this organisation")
    reminder = load_for_update(uow, principal.org, reminder_id)
    if reminder.status not in ACTIVE_STATUSES:
        raise InvalidTransition(reminder.id, reminder.status, "assign")
    previous = reminder.assigned_to
    if previous == assignee:
        return reminder  # nothing changes: no history row
    reason = ASSIGNED if assignee is not None else UNASSIGNED
    details = {"assigned_to": assignee, "previous": previous}
    row = t.history_row(reminder.id, reminder.status, reminder.status, principal.actor, now, reason=reason)
    row["details"] = {key: value for key, value in details.items() if value is not None}
    reminder.assigned_to = assignee
    reminder.assigned_at = now if assignee is not None else None
    reminder.updated_at = now
    reminder.version += 1
    t.record(uow, [row])
    return _flushed(uow, reminder)
