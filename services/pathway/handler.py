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
from shared.events import PATHWAY_ASSESSED, SOURCE_PATHWAY, TRIGGER_RULE_SET_CHANGED, Event
from shared.observability.metrics import EVALUATIONS, UPDATES_EVALUATED, UPDATES_PER_EVALUATION
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


def lock_patient(uow: UnitOfWork, patient_id: str) -> Patient:
    """The patient, row-locked (PostgreSQL; SQLite: the write lock is held already) until commit."""
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


_PRECEDENCE = {"pending": 2, "satisfied": 1, "cancelled": 0}  # as notifications merges colliding deadlines


def _deadline_states(deadlines: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    states: dict[tuple[str, str], str] = {}
    for deadline in deadlines:
        key, status = (deadline["kind"], deadline["due_at"]), deadline["status"]
        if key not in states or _PRECEDENCE[status] > _PRECEDENCE[states[key]]:
            states[key] = status
    return states


def deadline_moves(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Deadlines `added` (pending now, not before: a reminder to schedule) and `withdrawn` (pending before,
    now cancelled or gone: its reminder is cancelled), each `{kind, due_at}`, in due order. A deadline that
    turned satisfied is neither: its reminder completes."""
    old, new = _deadline_states(before), _deadline_states(after)
    pending_before = {key for key, status in old.items() if status == "pending"}
    pending_after = {key for key, status in new.items() if status == "pending"}
    withdrawn = {key for key in pending_before - pending_after if new.get(key) != "satisfied"}

    def listed(keys: set[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"kind": kind, "due_at": due} for kind, due in sorted(keys, key=lambda k: (k[1], k[0]))]

    return {"added": listed(pending_after - pending_before), "withdrawn": listed(withdrawn)}


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two assessment bodies, in terms a coordinator reads. Keys (each only when
    something changed; the contract only grows): `stage` {from, to}; `flags` {added, removed} (codes);
    `deadlines` [{kind, due_at, from, to}] (status moves); `deadlines_added` / `deadlines_withdrawn`
    [{kind, due_at}]; `rule_set_version` {from, to}; `other` (names of other changed keys)."""
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
        moves = deadline_moves(before["deadlines"], after["deadlines"])
        changes.update({f"deadlines_{name}": keys for name, keys in moves.items() if keys})
    if before.get("rule_set_version") != after.get("rule_set_version"):
        changes["rule_set_version"] = {"from": before.get("rule_set_version"), "to": after.get("rule_set_version")}
    for key in WATCHED:
        if key not in ("stage", "flags", "deadlines") and before.get(key) != after.get(key):
            changes.setdefault("other", []).append(key)
    return changes


_DEADLINE_KEYS = ("kind", "due_at", "status", "text", "citation", "fact_ids")


def _event_deadline(deadline: dict[str, Any]) -> dict[str, Any]:
    item = {key: deadline[key] for key in _DEADLINE_KEYS}
    if "sources" in deadline:  # [{code, title, url}] where the engine resolves its citation codes
        item["sources"] = deadline["sources"]
    return item


def assessed_event(patient: Patient, seq: int, body: dict[str, Any], trigger: str = "update") -> Event:
    """Ids, kinds, stage, due times and rule texts only: no clinical values."""
    return Event(
        type=PATHWAY_ASSESSED,
        source=SOURCE_PATHWAY,
        subject=patient.id,
        data={
            "patient_id": patient.id,
            "org": patient.org,
            "assessment_seq": seq,
            "stage": body["stage"],
            "deadlines": [_event_deadline(d) for d in body["deadlines"]],
            "trigger": trigger,
            "rule_set_version": body["rule_set_version"],
        },
    )


def _trigger(previous: Assessment | None, body: dict[str, Any], woken_by: str) -> str:
    """A move to another rule set is named as such, whatever woke the worker (a run, an update, a timer):
    it is what explains the change in the patient's history and in the reminders it creates."""
    if previous is not None and previous.rule_set_version != body["rule_set_version"]:
        return TRIGGER_RULE_SET_CHANGED
    return woken_by


def _count_evaluation(trigger: str, previous: Assessment | None, body: dict[str, Any]) -> None:
    """Evaluations, and the updates each newly took in: many updates in one evaluation were coalesced."""
    before = int(previous.body.get("updates_evaluated", 0)) if previous is not None else 0
    new = max(int(body.get("updates_evaluated", 0)) - before, 0)
    EVALUATIONS.labels(trigger).inc()
    UPDATES_EVALUATED.inc(new)
    UPDATES_PER_EVALUATION.observe(new)


def evaluate_patient(uow: UnitOfWork, patient_id: str, trigger: str, *, locked: Patient | None = None) -> Outcome:
    """`locked`: the patient, when the caller holds its lock already."""
    patient = locked or lock_patient(uow, patient_id)
    now = utcnow()
    body = evaluate(load_facts(uow, patient.id), now, org_params(uow, patient.org)).to_dict()
    previous = latest_assessment(uow, patient.id)
    _count_evaluation(trigger, previous, body)
    changes = describe_changes(previous.body if previous else None, body)
    patient.next_evaluation_at = _parse(body.get("next_evaluation_at"))
    uow.session.add(patient)
    if previous is not None and not changes:
        return Outcome(stored=False, seq=previous.seq, changed=(), published=False)
    seq = (previous.seq if previous else 0) + 1
    trigger = _trigger(previous, body, trigger)
    uow.session.add(_assessment_row(patient, seq, body, changes, trigger, now))
    publish = previous is None or "stage" in changes or "deadlines" in changes or _sources_changed(previous, body)
    if publish:
        uow.publish(assessed_event(patient, seq, body, trigger))
    return Outcome(stored=True, seq=seq, changed=tuple(changes), published=publish)


def _sources_changed(previous: Assessment | None, body: dict[str, Any]) -> bool:
    """Deadline texts, citations or sources differ (a new rule set re-words them): reminders show them."""
    if previous is None:
        return False

    def shown(deadlines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(d["kind"], d["due_at"], d.get("text"), d.get("citation"), d.get("sources")) for d in deadlines]

    return shown(previous.body.get("deadlines", [])) != shown(body["deadlines"])


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
