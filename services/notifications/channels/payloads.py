"""What leaves the building: ids, kinds and times only. No names, MRNs, texts or clinical values.

The receiver fetches details through the authenticated API (GET /v1/reminders?patient_id=…).
An allow-list, not a deny-list: a field added to the event later does not leak by default.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from typing import Any

from shared import events, orgtime
from shared.clock import isoformat

DATA_KEYS = (
    "reminder_id",
    "patient_id",
    "org",
    "kind",
    "due_at",
    "delivered_at",
    "escalated_at",
    "origin",  # "rule_change" when a change of rule set created the reminder (absent otherwise)
    "origin_rule_set_version",
    "assigned_to",  # the subject id of the coordinator who owns the reminder (absent while nobody does)
)
# Instants an email also shows in the organisation's time zone.
TIME_KEYS = ("due_at", "delivered_at", "escalated_at")
EVENT_TYPES = (events.REMINDER_DUE, events.REMINDER_ESCALATED)


def webhook_payload(event_type: str, event_time: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks payload shape: {"type", "timestamp", "data"}."""
    return {
        "type": event_type,
        "timestamp": isoformat(event_time),
        "data": {key: data[key] for key in DATA_KEYS if data.get(key) is not None},
    }


def webhook_body(payload: dict[str, Any]) -> str:
    """The exact bytes that are signed and sent (compact, key order as built)."""
    return json.dumps(payload, separators=(",", ":"))


_SUBJECTS = {
    events.REMINDER_DUE: "carepath: reminder due",
    events.REMINDER_ESCALATED: "carepath: reminder ESCALATED (not acknowledged)",
}


def _line(key: str, value: Any, zone: tzinfo) -> str:
    """One `key: value` line; an instant also in the organisation's zone ("2027-03-29 10:00 CEST")."""
    if key in TIME_KEYS and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return f"{key}: {value}"
        if moment.tzinfo is not None:
            return f"{key}: {orgtime.shown(moment, zone)} ({value})"
    return f"{key}: {value}"


def patient_page_path(patient_id: str, reminder_id: str | None = None) -> str:
    """Where a coordinator works a reminder: its patient's page, at the reminder (ids only: no PHI in a URL)."""
    return f"/worklist/patients/{patient_id}" + (f"#reminder-{reminder_id}" if reminder_id else "")


def email_message(
    payload: dict[str, Any],
    sender: str,
    recipient: str,
    message_id: str,
    zone: tzinfo = UTC,
    base_url: str = "",
) -> EmailMessage:
    data = payload.get("data", {})
    message = EmailMessage()
    message["Subject"] = f"{_SUBJECTS.get(payload.get('type', ''), 'carepath notification')} ({data.get('kind')})"
    message["From"] = sender
    message["To"] = recipient
    message["Message-ID"] = f"<{message_id}@carepath>"
    message["X-Carepath-Event"] = str(payload.get("type"))
    lines = [
        "A carepath reminder needs attention on the coordinators' worklist.",
        "",
        *(_line(key, data[key], zone) for key in DATA_KEYS if key in data),
        "",
        "Details are on the worklist (/worklist) and through the authenticated API; this message",
        "deliberately carries no patient details.",
    ]
    if data.get("patient_id"):
        page = base_url.rstrip("/") + patient_page_path(str(data["patient_id"]), data.get("reminder_id"))
        lines[-2:-2] = [f"The patient's page (sign in first): {page}", ""]
    message.set_content("\n".join(lines))
    return message
