"""Record deliveries for reminder events, one per configured target. Nothing is sent here: sending is
the dispatcher's job, from the rows (time lives in the database; the consumer's transaction stays short).

The worklist needs no delivery: it is the reminder table itself, which the scheduler already marked due.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.notifications.channels import store
from services.notifications.channels.payloads import EVENT_TYPES, webhook_payload
from services.notifications.channels.signing import new_message_id
from shared import events
from shared.clock import isoformat, utcnow
from shared.db.tables import ChannelDelivery, Reminder
from shared.db.uow import UnitOfWork
from shared.events import Event
from shared.observability.tracing import current_traceparent
from shared.settings import get_settings

log = logging.getLogger("carepath.channels")


def handle_event(uow: UnitOfWork, event: Event) -> None:
    """Consumer handler (carepath.channels.consume); de-duplication and the commit are the consumer's."""
    record_deliveries(uow, event, utcnow())


def _event_data(event: Event, reminder: Reminder) -> dict[str, object]:
    """Identity fields from the reminder row (the truth), plus what the event adds (escalated_at)."""
    return {
        **event.data,
        "reminder_id": reminder.id,
        "patient_id": reminder.patient_id,
        "org": reminder.org,
        "kind": reminder.kind,
        "due_at": isoformat(reminder.due_at),
        "assigned_to": reminder.assigned_to,  # the owner's subject id, or None (left out of the payload)
    }


def _targets(uow: UnitOfWork, org: str, *, escalation: bool) -> list[tuple[str, str]]:
    """Escalations go to the escalation channel; an organisation without one gets them on its regular
    channels rather than not at all. Due reminders go to the regular channels only."""
    targets = [(store.WEBHOOK, e.id) for e in store.active_endpoints(uow, org, escalation=escalation)]
    targets += [(store.EMAIL, r.id) for r in store.active_recipients(uow, org, escalation=escalation)]
    if escalation and not targets:
        return _targets(uow, org, escalation=False)
    return targets


def _over_daily_cap(uow: UnitOfWork, patient_id: str, now: datetime) -> bool:
    """CAREPATH_NOTIFICATIONS_PER_PATIENT_PER_DAY events about one patient per UTC day are delivered; the
    deliveries of any further one are recorded as held (never sent). The reminder itself is untouched, so
    the coordinator still sees it on the worklist."""
    settings = get_settings()
    if not settings.rate_limits_enabled:
        return False
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return store.notified_today(uow, patient_id, day_start) >= settings.notifications_per_patient_per_day


def record_deliveries(uow: UnitOfWork, event: Event, now: datetime) -> int:
    """Insert one pending delivery per active target of the event's organisation; returns how many."""
    if event.type not in EVENT_TYPES:
        log.warning("channels: ignoring event type %s (%s)", event.type, event.id)
        return 0
    reminder_id = event.data.get("reminder_id")
    reminder = uow.session.get(Reminder, reminder_id) if isinstance(reminder_id, str) else None
    if reminder is None:
        log.warning("channels: event %s names no known reminder; nothing to deliver", event.id)
        return 0
    if event.data.get("org") not in (None, reminder.org):
        log.error("channels: event %s organisation does not match its reminder; skipped", event.id)
        return 0
    payload = webhook_payload(event.type, event.time, _event_data(event, reminder))
    targets = _targets(uow, reminder.org, escalation=event.type == events.REMINDER_ESCALATED)
    held = bool(targets) and _over_daily_cap(uow, reminder.patient_id, now)
    traceparent = current_traceparent()  # the send continues this consumer's trace
    if held:
        log.warning("channels: event %s held: the patient's daily notification cap is reached", event.id)
    for channel, target_id in targets:
        uow.session.add(
            ChannelDelivery(
                message_id=new_message_id(),
                org=reminder.org,
                channel=channel,
                target_id=target_id,
                event_id=event.id,
                event_type=event.type,
                reminder_id=reminder.id,
                payload=payload,
                status=store.HELD if held else store.PENDING,
                next_attempt_at=None if held else now,
                last_error="held: the patient's daily notification cap is reached" if held else None,
                traceparent=traceparent,
                created_at=now,
            )
        )
    uow.session.flush()
    return len(targets)
