"""Read side of the pathway: the current assessment and the stored history of a patient."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.pathway.handler import latest_assessment
from services.pathway.mapping import org_params
from services.pathway.rules import evaluate
from shared.clock import isoformat, utcnow
from shared.db.tables import Assessment, Patient
from shared.db.uow import UnitOfWork


def current_pathway(uow: UnitOfWork, patient: Patient) -> dict[str, Any]:
    """The newest stored assessment; before the first one, the assessment of no facts (updates_evaluated 0),
    so a client can tell the worker has not caught up yet."""
    stored = latest_assessment(uow, patient.id)
    body = stored.body if stored else evaluate([], utcnow(), org_params(uow, patient.org)).to_dict()
    return {"patient_id": patient.id, **body}


def pathway_history(uow: UnitOfWork, patient: Patient, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        select(Assessment)
        .where(Assessment.patient_id == patient.id)
        .order_by(Assessment.seq.desc())
        .limit(limit)
    )
    return [
        {
            "seq": row.seq,
            "evaluated_at": isoformat(row.evaluated_at),
            "trigger": row.trigger,
            "stage": row.stage,
            "changes": row.changes,
            "assessment": {"patient_id": patient.id, **row.body},
        }
        for row in uow.session.execute(query).scalars()
    ]
