"""CloudEvents 1.0 envelope and versioned payloads. The one place event types are spelled.

Attributes carry ids only: `subject` is the patient id, never a name or MRN. Payloads carry ids,
kinds, stages and due times, never clinical values.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.clock import as_utc, utcnow

PATIENT_UPDATED = "carepath.patient.updated"
PATHWAY_REEVALUATION_REQUESTED = "carepath.pathway.reevaluation_requested"
PATHWAY_ASSESSED = "carepath.pathway.assessed"
REMINDER_DUE = "carepath.reminder.due"
REMINDER_ESCALATED = "carepath.reminder.escalated"

# `trigger` of a `carepath.pathway.assessed` event whose assessment moved the patient to another rule set.
TRIGGER_RULE_SET_CHANGED = "rule_set_changed"

SOURCE_INTAKE = "/carepath/intake"
SOURCE_PATHWAY = "/carepath/pathway"
SOURCE_SCHEDULER = "/carepath/scheduler"
SOURCE_NOTIFICATIONS = "/carepath/notifications"
SOURCE_OPS = "/carepath/ops"

DATA_SCHEMA_VERSION = "1"
_FORMAT = JSONFormat()


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    # The OpenTelemetry context the event continues (None: the current one). Not part of the event itself.
    trace_context: Any = field(default=None, compare=False, repr=False)


def _context_extensions(trace_context: Any = None) -> dict[str, str]:
    """Extension attributes from what this process is handling: the request id that caused the event
    (`carepathrequestid`) and the W3C trace context (`traceparent`, `tracestate`). Ids only."""
    from shared.observability.context import REQUEST_ID_ATTRIBUTE, current_request_id
    from shared.observability.tracing import inject

    extensions: dict[str, str] = {}
    if (request_id := current_request_id()) is not None:
        extensions[REQUEST_ID_ATTRIBUTE] = request_id
    inject(extensions, trace_context)
    return extensions


def to_envelope(event: Event) -> dict[str, Any]:
    """Structured-mode CloudEvent as a JSON-ready dict."""
    cloud_event = CloudEvent(
        attributes={
            **_context_extensions(event.trace_context),
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "specversion": "1.0",
            "time": as_utc(event.time),
            "subject": event.subject,
            "datacontenttype": "application/json",
            "dataschema": f"urn:carepath:{event.type}:v{DATA_SCHEMA_VERSION}",
        },
        data=event.data,
    )
    envelope: dict[str, Any] = json.loads(_FORMAT.write(cloud_event))
    return envelope


def from_envelope(envelope: dict[str, Any]) -> Event:
    cloud_event = _FORMAT.read(None, json.dumps(envelope))
    attributes = cloud_event.get_attributes()
    data = cloud_event.get_data()
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    return Event(
        id=attributes["id"],
        type=attributes["type"],
        source=attributes["source"],
        subject=attributes.get("subject", ""),
        time=as_utc(attributes["time"]),
        data=dict(data or {}),
    )
