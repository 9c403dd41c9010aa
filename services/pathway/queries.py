"""Read side of the pathway: the current assessment and the stored history of a patient."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col

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


def pathway_history(
    uow: UnitOfWork, patient: Patient, limit: int = 100, before_seq: int | None = None
) -> list[dict[str, Any]]:
    """The stored assessments, newest first, each with what changed from the one before it; `before_seq`
    pages on (items older than that seq)."""
    query = select(Assessment).where(col(Assessment.patient_id) == patient.id)
    if before_seq is not None:
        query = query.where(col(Assessment.seq) < before_seq)
    query = query.order_by(col(Assessment.seq).desc()).limit(limit)
    return [_history_item(patient, row) for row in uow.session.execute(query).scalars()]


def pathway_history_page(
    uow: UnitOfWork, patient: Patient, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """One page of the history with an opaque cursor (the seq to continue below); None when no more."""
    before = _parse_cursor(cursor)
    items = pathway_history(uow, patient, limit=limit + 1, before_seq=before)
    more = len(items) > limit
    items = items[:limit]
    return {"patient_id": patient.id, "items": items, "next_cursor": str(items[-1]["seq"]) if more else None}


class BadCursor(ValueError):
    """The history cursor is not one this service issued."""


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit():
        raise BadCursor("invalid cursor")
    return int(cursor)


def _history_item(patient: Patient, row: Assessment) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "evaluated_at": isoformat(row.evaluated_at),
        "trigger": row.trigger,
        "stage": row.stage,
        "rule_set_version": row.rule_set_version,
        "profile": row.profile,
        "params_digest": row.params_digest,
        "changes": row.changes,
        "assessment": {"patient_id": patient.id, **row.body},
    }
