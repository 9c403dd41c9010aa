"""The organisation's calendar feed (iCalendar): scheduled and due reminders only.

No patient names or MRNs: each event names the patient id, the kind and the reminder's one-line text.
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


def _sources_line(reminder: Reminder) -> str:
    """The resolved sources (title and link) when the pathway sent them, else the citation codes."""
    if not reminder.sources:
        return f"Source: {reminder.citation}"
    parts = [
        f"{item.get('title') or item.get('code')}" + (f" <{item['url']}>" if item.get("url") else "")
        for item in reminder.sources
    ]
    return "Sources: " + "; ".join(parts)


def feed_reminders(uow: UnitOfWork, org: str, limit: int = MAX_FEED_ITEMS) -> list[Reminder]:
    statement = (
        select(Reminder)
        .where(col(Reminder.org) == org, col(Reminder.status).in_(FEED_STATUSES))
        .order_by(col(Reminder.due_at), col(Reminder.id))
        .limit(limit)
    )
    return list(uow.session.execute(statement).scalars())


def _event(reminder: Reminder, stamp: datetime) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", f"{reminder.id}@carepath")
    event.add("dtstamp", stamp)
    event.add("dtstart", reminder.due_at)
    event.add("duration", EVENT_DURATION)
    event.add("summary", f"{reminder.kind} - patient {reminder.patient_id}")
    event.add("description", f"{reminder.text}\n{_sources_line(reminder)}\nStatus: {reminder.status}")
    event.add("categories", [reminder.kind])
    return event


def calendar_bytes(reminders: list[Reminder], stamp: datetime) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//carepath//reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "carepath reminders")
    for reminder in reminders:
        calendar.add_component(_event(reminder, stamp))
    return calendar.to_ical()
