"""A patient's history across a change of rule set, and the dry run that forecasts it.

"Assessed by an older rule set" is made by rewriting a stored assessment as an older release would have
stored it (another version, another stage, a flag and a deadline the current rules do not give, without one
they do): the current engine is then the "new" rule set."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from services.pathway.dryrun import forecast, forecast_org, render_table
from services.pathway.handler import deadline_moves, evaluate_patient
from services.pathway.queries import pathway_history
from services.pathway.rules import RULE_SET_VERSION
from shared.clock import utcnow
from shared.db.tables import Assessment, OutboxMessage, Patient, ReevaluationRun
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED
from shared.settings import Settings

pytestmark = pytest.mark.integration
OLD = "lbp-postlam-2025.9"
GONE = {
    "kind": "pt_follow_up",
    "due_at": "2026-01-05T09:00:00Z",
    "status": "pending",
    "text": "t",
    "citation": "G3",
    "fact_ids": [],
}


def _as_old_release(settings: Settings, patient_id: str) -> dict[str, Any]:
    """Rewrite the patient's stored assessment as an older rule set would have left it; returns that body."""
    with UnitOfWork(settings) as uow:
        row = uow.session.execute(select(Assessment).where(Assessment.patient_id == patient_id)).scalar_one()
        body = dict(row.body)
        pending = [d for d in body["deadlines"] if d["status"] == "pending"]
        assert pending, "the story needs a pending deadline"
        body.update(
            rule_set_version=OLD,
            stage="first_line",
            flags=[*body["flags"], {"code": "retired_flag", "fact_ids": [], "rationale": "r"}],
            deadlines=[d for d in body["deadlines"] if d is not pending[0]] + [GONE],
        )
        row.body, row.rule_set_version, row.stage = body, OLD, "first_line"
        uow.session.add(row)
        uow.commit()
    return body


def test_the_history_records_a_rule_change_with_what_it_changed(settings: Settings, kit) -> None:  # type: ignore[no-untyped-def]
    [patient_id] = kit.patients("org-a", 1, presenting=True)
    current = kit.latest(patient_id).body
    old = _as_old_release(settings, patient_id)
    dropped = next(d for d in current["deadlines"] if d["status"] == "pending")

    with UnitOfWork(settings) as uow:
        outcome = evaluate_patient(uow, patient_id, "reevaluation")  # woken by a re-evaluation run
        uow.commit()
    assert outcome.stored and outcome.published and outcome.seq == 2
    with UnitOfWork(settings, read_only=True) as uow:
        patient = uow.session.get(Patient, patient_id)
        newest = pathway_history(uow, patient)[0]  # type: ignore[arg-type]
        envelope = uow.session.execute(
            select(OutboxMessage.envelope)
            .where(OutboxMessage.event_type == PATHWAY_ASSESSED)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).scalar_one()
    changes = newest["changes"]
    assert newest["trigger"] == "rule_set_changed" and newest["rule_set_version"] == RULE_SET_VERSION
    assert changes["rule_set_version"] == {"from": OLD, "to": RULE_SET_VERSION}
    assert old["stage"] != current["stage"] and changes["stage"] == {"from": "first_line", "to": current["stage"]}
    assert changes["flags"]["removed"] == ["retired_flag"] and changes["flags"]["added"] == []
    assert changes["deadlines_added"] == [{"kind": dropped["kind"], "due_at": dropped["due_at"]}]
    assert changes["deadlines_withdrawn"] == [{"kind": GONE["kind"], "due_at": GONE["due_at"]}]
    assert "rule_set_version" in changes["other"]  # what was there before stays (the contract only grows)
    data = envelope["data"]
    assert (data["trigger"], data["rule_set_version"], data["assessment_seq"]) == (
        "rule_set_changed",
        RULE_SET_VERSION,
        2,
    )
    assert data["deadlines"] and all(d["sources"] for d in data["deadlines"])  # resolved citations travel along


def test_an_update_under_the_same_rules_is_not_called_a_rule_change(settings: Settings, kit) -> None:  # type: ignore[no-untyped-def]
    [patient_id] = kit.patients("org-a", 1)
    with UnitOfWork(settings) as uow:
        row = uow.session.execute(select(Assessment).where(Assessment.patient_id == patient_id)).scalar_one()
        row.body = {**row.body, "stage": "second_line"}
        uow.session.add(row)
        uow.commit()
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "update")
        uow.commit()
    latest = kit.latest(patient_id)
    assert latest.trigger == "update" and "rule_set_version" not in latest.changes


def test_deadline_moves_follow_the_merge_rules() -> None:
    def d(kind: str, due: str, status: str) -> dict[str, str]:
        return {"kind": kind, "due_at": due, "status": status}

    before = [d("a", "1", "pending"), d("b", "1", "pending"), d("c", "1", "pending"), d("e", "1", "satisfied")]
    after = [
        d("a", "1", "satisfied"),
        d("b", "1", "cancelled"),
        d("d", "2", "cancelled"),
        d("d", "2", "pending"),
        d("e", "1", "pending"),
    ]
    assert deadline_moves(before, after) == {
        "added": [{"kind": "e", "due_at": "1"}, {"kind": "d", "due_at": "2"}],  # due order
        "withdrawn": [{"kind": "b", "due_at": "1"}, {"kind": "c", "due_at": "1"}],  # a was satisfied: completed
    }


def test_dry_run_is_batched_paced_and_stores_nothing(settings: Settings, kit) -> None:  # type: ignore[no-untyped-def]
    patients = kit.patients("org-a", 5, presenting=True)
    kit.patients("org-b", 2)
    for patient_id in patients[:2]:
        _as_old_release(settings, patient_id)
    pauses: list[float] = []
    result = forecast_org("org-a", utcnow(), settings, rate=1000, batch=2, sleep=pauses.append)
    assert len(pauses) == 2  # 5 patients in batches of 2: a pause after each full batch
    report = result.to_json()
    assert (report["patients"], report["would_change"], report["stage_changes"]) == (5, 2, 2)
    assert report["flags_lost"] == {"retired_flag": 2} and report["stored_rule_sets"][OLD] == 2
    assert report["reminders"]["scheduled"] == 2 and report["reminders"]["cancelled"] == 2
    whole = forecast(["org-a", "org-b"], settings)
    assert [org["would_change"] for org in whole["orgs"]] == [2, 0]
    assert "org-a" in render_table(whole) and "flag lost retired_flag: 2" in render_table(whole)
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(Assessment)).scalar_one() == 7
        assert uow.session.execute(select(func.count()).select_from(ReevaluationRun)).scalar_one() == 0
