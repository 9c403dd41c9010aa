"""The organisation's calendar feed (iCalendar): scheduled and due reminders only.

A subscribed feed is fetched and stored by third-party calendar services, so it carries no clinical text:
each event holds the reminder's kind (a code), its due time, the reminder and patient ids (opaque UUIDs)
and a link to the worklist, where a signed-in coordinator reads the details. No names, MRNs, reminder
texts, citations or statuses. The owning coordinator, if any, is named by subject id only
(`X-CAREPATH-ASSIGNED-TO`).

Times are in the organisation's time zone (shared/orgtime.py): `DTSTART;TZID=Europe/Berlin:…` with the
zone's VTIMEZONE (icalendar's `add_missing_timezones`), so every calendar shows the local time across
daylight-saving changes; an organisation without a zone gets UTC (`…Z`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

import icalendar
from sqlalchemy import select
from sqlmodel import col

from services.notifications.channels.payloads import patient_page_path
from shared.clock import as_utc
from shared.db.tables import Reminder
from shared.db.uow import UnitOfWork

FEED_STATUSES = ("scheduled", "due")
MAX_FEED_ITEMS = 5000  # nearest first; a calendar client has no use for a longer feed
EVENT_DURATION = timedelta(minutes=15)


def feed_reminders(uow: UnitOfWork, org: str, limit: int = MAX_FEED_ITEMS) -> list[Reminder]:
    statement = (
        select(Reminder)
        .where(col(Reminder.org) == org, col(Reminder.status).in_(FEED_STATUSES))
        .order_by(col(Reminder.due_at), col(Reminder.id))
        .limit(limit)
    )
    return list(uow.session.execute(statement).scalars())


def _event(reminder: Reminder, stamp: datetime, worklist_url: str, zone: tzinfo) -> icalendar.Event:
    page = worklist_url.removesuffix("/worklist") + patient_page_path(reminder.patient_id, reminder.id)
    event = icalendar.Event()
    event.add("uid", f"{reminder.id}@carepath")
    event.add("dtstamp", as_utc(stamp))
    due = as_utc(reminder.due_at)
    event.add("dtstart", due if zone is UTC else due.astimezone(zone))
    event.add("duration", EVENT_DURATION)
    event.add("summary", f"carepath: {reminder.kind}")
    owner = f" Assigned to coordinator {reminder.assigned_to}." if reminder.assigned_to else ""
    event.add(
        "description",
        f"Reminder {reminder.id} for patient {reminder.patient_id}.{owner} Details on the patient's page: {page}",
    )
    if reminder.assigned_to:
        event.add("x-carepath-assigned-to", reminder.assigned_to)
    event.add("url", page)
    event.add("categories", [reminder.kind])
    return event


def calendar_bytes(reminders: list[Reminder], stamp: datetime, worklist_url: str, zone: tzinfo = UTC) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//carepath//reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "carepath reminders")
    if zone is not UTC:
        calendar.add("x-wr-timezone", str(zone))
    for reminder in reminders:
        calendar.add_component(_event(reminder, stamp, worklist_url, zone))
    if zone is not UTC:
        calendar.add_missing_timezones()  # the VTIMEZONE the TZID parameters refer to
    return calendar.to_ical()
