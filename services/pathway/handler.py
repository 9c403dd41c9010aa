"""Evaluate one patient: load all facts, run the pure engine, store the assessment if anything changed,
and publish `carepath.pathway.assessed` (through the outbox) when the stage or the deadlines changed.

Recompute, don't patch: duplicate or out-of-order events cannot corrupt anything. Evaluations of one
patient are serialised by a row lock on the patient (PostgreSQL) or the write lock (SQLite), so the
newest facts always win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from services.pathway.mapping import load_facts, org_params
from services.pathway.rules import evaluate
from shared.clock import utcnow
from shared.db.tables import Assessment, Patient
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, SOURCE_PATHWAY, Event
from shared.patients import PatientNotFound

# Keys that change on every evaluation and say nothing about the patient's state.
VOLATILE = ("evaluated_at",)
WATCHED = (
    "stage",
    "stage_since",
    "flags",
    "deadlines",
    "recommendations",
    "next_evaluation_at",
    "updates_evaluated",
    "rule_set_version",
    "profile",
    "params_digest",
)


@dataclass(frozen=True)
class Outcome:
    stored: bool
    seq: int
    changed: tuple[str, ...]
    published: bool


def _lock_patient(uow: UnitOfWork, patient_id: str) -> Patient:
    query = select(Patient).where(col(Patient.id) == patient_id)
    if not uow.is_sqlite:
        query = query.with_for_update()
    patient = uow.session.execute(query).scalar_one_or_none()
    if patient is None:
        raise PatientNotFound(patient_id)
    return patient


def latest_assessment(uow: UnitOfWork, patient_id: str) -> Assessment | None:
    query = (
        select(Assessment).where(col(Assessment.patient_id) == patient_id).order_by(col(Assessment.seq).desc()).limit(1)
    )
    return uow.session.execute(query).scalar_one_or_none()


def _codes(items: list[dict[str, Any]], key: str) -> set[str]:
    return {item[key] for item in items}


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two assessment bodies, in terms a coordinator reads."""
    if before is None:
        return {"first": True, "stage": {"from": None, "to": after["stage"]}}
    changes: dict[str, Any] = {}
    if before["stage"] != after["stage"]:
        changes["stage"] = {"from": before["stage"], "to": after["stage"]}
    added = sorted(_codes(after["flags"], "code") - _codes(before["flags"], "code"))
    removed = sorted(_codes(before["flags"], "code") - _codes(after["flags"], "code"))
    if added or removed:
        changes["flags"] = {"added": added, "removed": removed}
    old = {(d["kind"], d["due_at"]): d["status"] for d in before["deadlines"]}
    new = {(d["kind"], d["due_at"]): d["status"] for d in after["deadlines"]}
    moved = [
        {"kind": kind, "due_at": due, "from": old.get((kind, due)), "to": new.get((kind, due))}
        for kind, due in sorted(set(old) | set(new))
        if old.get((kind, due)) != new.get((kind, due))
    ]
    if moved:
        changes["deadlines"] = moved
    for key in WATCHED:
        if key not in ("stage", "flags", "deadlines") and before.get(key) != after.get(key):
            changes.setdefault("other", []).append(key)
    return changes


def _assessed_event(patient: Patient, seq: int, body: dict[str, Any]) -> Event:
    deadlines = [
        {k: d[k] for k in ("kind", "due_at", "status", "text", "citation", "fact_ids")} for d in body["deadlines"]
    ]
    return Event(
        type=PATHWAY_ASSESSED,
        source=SOURCE_PATHWAY,
        subject=patient.id,
        data={
            "patient_id": patient.id,
            "org": patient.org,
            "assessment_seq": seq,
            "stage": body["stage"],
            "deadlines": deadlines,
        },
    )


def evaluate_patient(uow: UnitOfWork, patient_id: str, trigger: str) -> Outcome:
    patient = _lock_patient(uow, patient_id)
    now = utcnow()
    body = evaluate(load_facts(uow, patient.id), now, org_params(uow, patient.org)).to_dict()
    previous = latest_assessment(uow, patient.id)
    changes = describe_changes(previous.body if previous else None, body)
    patient.next_evaluation_at = _parse(body.get("next_evaluation_at"))
    uow.session.add(patient)
    if previous is not None and not changes:
        return Outcome(stored=False, seq=previous.seq, changed=(), published=False)
    seq = (previous.seq if previous else 0) + 1
    uow.session.add(_assessment_row(patient, seq, body, changes, trigger, now))
    publish = previous is None or "stage" in changes or "deadlines" in changes
    if publish:
        uow.publish(_assessed_event(patient, seq, body))
    return Outcome(stored=True, seq=seq, changed=tuple(changes), published=publish)


def _assessment_row(
    patient: Patient, seq: int, body: dict[str, Any], changes: dict[str, Any], trigger: str, now: datetime
) -> Assessment:
    return Assessment(
        patient_id=patient.id,
        org=patient.org,
        seq=seq,
        stage=body["stage"],
        rule_set_version=body["rule_set_version"],
        profile=body["profile"],
        params_digest=body["params_digest"],
        updates_evaluated=body["updates_evaluated"],
        evaluated_at=now,  # the same instant the engine evaluated at
        body=body,
        changes=changes,
        trigger=trigger,
    )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
