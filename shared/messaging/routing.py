"""Which consumers receive which event type. A consumer is one Celery task on one queue."""

from __future__ import annotations

from shared import events

PATHWAY = "pathway"
NOTIFICATIONS = "notifications"
CHANNELS = "channels"

# consumer -> (Celery task name, queue)
CONSUMERS: dict[str, tuple[str, str]] = {
    PATHWAY: ("carepath.pathway.consume", "pathway"),
    NOTIFICATIONS: ("carepath.notifications.consume", "notifications"),
    CHANNELS: ("carepath.channels.consume", "channels"),
}

ROUTES: dict[str, tuple[str, ...]] = {
    events.PATIENT_UPDATED: (PATHWAY,),
    events.PATHWAY_REEVALUATION_REQUESTED: (PATHWAY,),
    events.PATHWAY_ASSESSED: (NOTIFICATIONS,),
    events.REMINDER_DUE: (CHANNELS,),
    events.REMINDER_ESCALATED: (CHANNELS,),
}

QUEUES = tuple(sorted({queue for _, queue in CONSUMERS.values()}))


def consumers_for(event_type: str) -> tuple[str, ...]:
    return ROUTES.get(event_type, ())
