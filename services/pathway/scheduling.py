"""Time-driven re-evaluation: the engine says when the result changes with no new fact
(`next_evaluation_at`); this sweep turns those instants into re-evaluation events (outbox)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from shared.clock import utcnow
from shared.db.claims import claim_rows
from shared.db.tables import Patient, table_of
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_REEVALUATION_REQUESTED, SOURCE_SCHEDULER, Event
from shared.observability.metrics import beat
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.pathway.scheduler")


def request_due_reevaluations(uow: UnitOfWork, now: datetime, limit: int) -> int:
    """Claim patients whose next_evaluation_at has come and queue one re-evaluation each."""
    table = table_of(Patient)
    claimed = claim_rows(
        uow,
        table,
        condition=table.c.next_evaluation_at.is_not(None) & (table.c.next_evaluation_at <= now),
        order_by=table.c.next_evaluation_at,
        limit=limit,
        values={"next_evaluation_at": None},
        returning=(table.c.id, table.c.org),
    )
    uow.publish_many(
        Event(
            type=PATHWAY_REEVALUATION_REQUESTED,
            source=SOURCE_SCHEDULER,
            subject=row.id,
            data={"patient_id": row.id, "org": row.org, "reason": "scheduled"},
        )
        for row in claimed
    )
    return len(claimed)


def run_reevaluation_scheduler(stop: threading.Event, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    while not stop.is_set():
        try:
            with UnitOfWork(settings) as uow:
                count = request_due_reevaluations(uow, utcnow(), settings.scheduler_batch)
                uow.commit()
        except Exception:
            log.exception("re-evaluation sweep failed; retrying")
            count = 0
        beat("timed-reevaluation")
        if count < settings.scheduler_batch:
            stop.wait(settings.scheduler_max_sleep)
