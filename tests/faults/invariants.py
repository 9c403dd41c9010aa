"""The one invariant checker every fault scenario ends with: carepath's promise, read from the database.

- every update that got a 202 is stored, and every patient's newest assessment counts all its updates;
- the outbox is drained (every row recorded by its consumer);
- every reminder that fell due was delivered exactly once (one `carepath.reminder.due` event per reminder,
  `delivered_at` set), and none is doubled (one reminder per patient, kind and due time);
- every reminder's history is a valid path of the state machine, starting at its creation.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text

# The reminder state machine's edges (services/notifications: reconcile, claims, lifecycle).
_ACTIVE = {"scheduled", "due", "acknowledged", "snoozed"}
_CLOSING = {"completed", "dismissed", "cancelled"}
EDGES: set[tuple[str | None, str]] = {
    (None, "scheduled"),
    ("scheduled", "due"),
    ("snoozed", "due"),
    ("due", "due"),  # escalation: status kept, history records it
    ("due", "acknowledged"),
    ("due", "snoozed"),
    ("acknowledged", "snoozed"),
    ("snoozed", "snoozed"),
    ("snoozed", "acknowledged"),
    *{(active, closing) for active in _ACTIVE for closing in _CLOSING},
    # the pathway reopens what it closed (never a coordinator's decision)
    ("completed", "scheduled"),
    ("completed", "due"),
    ("cancelled", "scheduled"),
    ("cancelled", "due"),
}


@dataclass
class Report:
    accepted: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)
    outbox_unfinished: int = 0
    due_reminders: int = 0
    deliveries: int = 0
    doubled: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    bad_paths: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.unevaluated
            or self.outbox_unfinished
            or self.doubled
            or self.undelivered
            or self.bad_paths
        )

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "stored": self.stored,
            "lost": len(self.lost),
            "unevaluated_patients": len(self.unevaluated),
            "outbox_unfinished": self.outbox_unfinished,
            "due_reminders": self.due_reminders,
            "deliveries": self.deliveries,
            "doubled": len(self.doubled),
            "undelivered": len(self.undelivered),
            "bad_history_paths": len(self.bad_paths),
        }


def _valid_path(rows: list[tuple[str | None, str]]) -> bool:
    previous: str | None = None
    for index, (source, target) in enumerate(rows):
        if (source, target) not in EDGES or (index > 0 and source != previous):
            return False
        previous = target
    return bool(rows) and rows[0][0] is None


def check(database_url: str, accepted_update_ids: Iterable[str]) -> Report:
    accepted = set(accepted_update_ids)
    report = Report(accepted=len(accepted))
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            stored = {row[0] for row in db.execute(text("SELECT id FROM patient_update"))}
            report.stored = len(stored)
            report.lost = sorted(accepted - stored)
            report.unevaluated = [
                row[0]
                for row in db.execute(
                    text(
                        "SELECT p.id FROM patient p"
                        " JOIN (SELECT patient_id, count(*) AS n FROM patient_update GROUP BY patient_id) u"
                        "   ON u.patient_id = p.id"
                        " LEFT JOIN assessment a ON a.patient_id = p.id"
                        "   AND a.seq = (SELECT max(seq) FROM assessment WHERE patient_id = p.id)"
                        " WHERE a.updates_evaluated IS NULL OR a.updates_evaluated <> u.n"
                    )
                )
            ]
            report.outbox_unfinished = db.execute(
                text("SELECT count(*) FROM outbox_message WHERE done_at IS NULL")
            ).scalar_one()
            _check_reminders(db, report)
    finally:
        engine.dispose()
    return report


def _check_reminders(db: Any, report: Report) -> None:
    delivered = {row[0]: row[1] for row in db.execute(text("SELECT id, delivered_at FROM reminder"))}
    due_ids = [
        row[0]
        for row in db.execute(text("SELECT DISTINCT reminder_id FROM reminder_transition WHERE to_status = 'due'"))
    ]
    report.due_reminders = len(due_ids)
    events = Counter(
        row[0]
        for row in db.execute(
            text(
                "SELECT event_id FROM outbox_message WHERE event_type = 'carepath.reminder.due'"
                " AND consumer = (SELECT min(consumer) FROM outbox_message WHERE event_type = 'carepath.reminder.due')"
            )
        )
    )
    report.deliveries = sum(events.values())
    first_due = Counter(
        row[0]
        for row in db.execute(
            text("SELECT reminder_id FROM reminder_transition WHERE from_status = 'scheduled' AND to_status = 'due'")
        )
    )
    report.doubled = sorted(rid for rid, n in first_due.items() if n > 1)
    report.doubled += [f"event:{eid}" for eid, n in events.items() if n > 1]
    report.undelivered = sorted(rid for rid in due_ids if delivered.get(rid) is None)
    keys = Counter(
        tuple(row) for row in db.execute(text("SELECT patient_id, kind, due_at FROM reminder"))
    )  # the unique constraint makes this impossible; checked anyway
    report.doubled += [f"key:{key}" for key, n in keys.items() if n > 1]
    paths: dict[str, list[tuple[str | None, str]]] = {}
    for reminder_id, source, target in db.execute(
        text("SELECT reminder_id, from_status, to_status FROM reminder_transition ORDER BY reminder_id, id")
    ):
        paths.setdefault(reminder_id, []).append((source, target))
    report.bad_paths = sorted(rid for rid in delivered if not _valid_path(paths.get(rid, [])))


def wait_until_consistent(database_url: str, accepted: Iterable[str], timeout: float = 120) -> tuple[Report, float]:
    """Poll the invariants until they hold (the stack catching up) or `timeout`; (last report, seconds taken)."""
    started = time.monotonic()
    ids = list(accepted)
    while True:
        report = check(database_url, ids)
        if report.ok or time.monotonic() - started > timeout:
            return report, time.monotonic() - started
        time.sleep(1.0)
