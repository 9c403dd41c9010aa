"""The organisation's calendar feed (iCalendar): scheduled and due reminders only.

A subscribed feed is fetched and stored by third-party calendar services, so it carries no clinical text:
each event holds the reminder's kind (a code), its due time, the reminder and patient ids (opaque UUIDs)
and a link to the worklist, where a signed-in coordinator reads the details. No names, MRNs, reminder
texts, citations or statuses.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar
from sqlalchemy import select
from sqlmodel import col

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


def _event(reminder: Reminder, stamp: datetime, worklist_url: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", f"{reminder.id}@carepath")
    event.add("dtstamp", stamp)
    event.add("dtstart", reminder.due_at)
    event.add("duration", EVENT_DURATION)
    event.add("summary", f"carepath: {reminder.kind}")
    event.add(
        "description",
        f"Reminder {reminder.id} for patient {reminder.patient_id}. Details on the worklist: {worklist_url}",
    )
    event.add("url", worklist_url)
    event.add("categories", [reminder.kind])
    return event


def calendar_bytes(reminders: list[Reminder], stamp: datetime, worklist_url: str) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//carepath//reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "carepath reminders")
    for reminder in reminders:
        calendar.add_component(_event(reminder, stamp, worklist_url))
    return calendar.to_ical()
