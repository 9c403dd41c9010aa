"""Spec §0 and §6: output shape, UTC timestamps, future facts and next_evaluation_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pathway_facts import (
    assess,
    at,
    evaluation_complete,
    fact,
    failed_first_line,
    med,
    neuro,
    pain,
    refractory_history,
    surgery,
    therapy,
)

from services.pathway.rules import RULE_SET_VERSION, Fact, evaluate, params_for

KEYS = {
    "stage",
    "stage_since",
    "rule_set_version",
    "profile",
    "params_digest",
    "evaluated_at",
    "next_evaluation_at",
    "updates_evaluated",
    "stage_reason",
    "pain",
    "current_mme",
    "flags",
    "recommendations",
    "deadlines",
}


def test_to_dict_shape_and_utc_timestamps():
    facts = [*failed_first_line(), med(10, "opioid_ir", mme=60)]
    now = at(40).astimezone(ZoneInfo("Europe/Berlin"))
    result = evaluate(facts, now).to_dict()
    assert set(result) == KEYS
    assert result["rule_set_version"] == RULE_SET_VERSION == "lbp-postlam-2026.2"
    assert result["params_digest"] == params_for().digest()
    assert result["evaluated_at"] == "2026-02-14T09:00:00Z"
    assert result["stage_since"].endswith("Z") and result["next_evaluation_at"].endswith("Z")
    assert all(d["due_at"].endswith("Z") for d in result["deadlines"])
    assert {"code", "fact_ids", "rationale"} == set(result["flags"][0])
    assert {"code", "text", "citation", "sources", "fact_ids"} == set(result["recommendations"][0])
    assert {"kind", "due_at", "status", "text", "citation", "sources", "fact_ids"} == set(result["deadlines"][0])
    assert set(result["stage_reason"]) == {"text", "fact_ids"}
    assert set(result["pain"]) == {"baseline", "latest", "change_percent"}
    assert result["current_mme"] == 60


def test_empty_history():
    result = assess([], 0)
    assert (result.stage, result.stage_since, result.next_evaluation_at, result.deadlines) == (
        "initial_evaluation",
        None,
        None,
        (),
    )
    assert {f.code for f in result.flags} == {
        "surgical_history_missing",
        "imaging_needed",
        "neuro_exam_needed",
        "pain_assessment_needed",
    }


def test_future_facts_count_but_do_not_apply():
    facts = [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid"), neuro(30, True)]
    result = assess(facts, 10)
    assert result.stage == "first_line" and result.updates_evaluated == len(facts)
    assert result.next_evaluation_at == at(30)


NEXT_CASES = [
    ("first line: PT start + 42 days", failed_first_line(), 40, 45),
    ("second line: CBT start + 56 days", refractory_history(), 100, 106),
    ("on opioids: 28 days", [surgery(0), med(5, "opioid_ir")], 10, 33),
    ("nothing time-driven", [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid")], 10, None),
    ("7.9 first line entered + 14 days: PT and non-opioid prompts", evaluation_complete(), 10, 16),
    (
        "7.9 PT referral + 28 days: pt_not_started",
        [*evaluation_complete(), therapy(3, "physical_therapy", "referred"), med(3, "nsaid")],
        10,
        31,
    ),
    ("7.9 second line, surgery + 365 days: rehabilitation", [*failed_first_line(), therapy(40, "cbt")], 100, 365),
    ("future fact before the threshold", [surgery(0), med(5, "opioid_ir"), pain(20, 5)], 10, 20),
    ("deadline due is not a change", [surgery(0)], 1, None),
    ("after every threshold", refractory_history(), 200, None),
]


@pytest.mark.parametrize(("facts", "day", "expected_day"), [c[1:] for c in NEXT_CASES], ids=[c[0] for c in NEXT_CASES])
def test_next_evaluation_at(facts, day, expected_day):
    result = assess(facts, day)
    assert result.next_evaluation_at == (None if expected_day is None else at(expected_day))


def _visible(result):
    return (
        result.stage,
        result.stage_since,
        [f.code for f in result.flags],
        [(d.kind, d.due_at, d.status) for d in result.deadlines],
    )


def test_next_evaluation_skips_a_threshold_that_changes_nothing_visible():
    # Urgent throughout, axial pain, CBT already started: the hidden pathway stage moves to second line at
    # day 45 but no visible stage, flag or deadline changes, so no re-evaluation is scheduled for it.
    facts = [
        *evaluation_complete(distribution="axial"),
        therapy(3, "physical_therapy"),
        med(3, "nsaid"),
        pain(31, 8, "axial"),
        therapy(4, "cbt"),
        neuro(20, True),
    ]
    result = assess(facts, 40)
    assert result.stage == "urgent_surgical_evaluation" and result.pathway_stage == "first_line"
    assert assess(facts, 45).pathway_stage == "second_line"
    assert _visible(assess(facts, 45)) == _visible(result)
    # the first visible change: second line (underneath) for 365 days after surgery offers rehabilitation
    assert result.next_evaluation_at == at(365)
    assert "multidisciplinary_rehab_recommended" in {f.code for f in assess(facts, 365).flags}


def test_due_at_is_exact_utc_offset_across_dst():
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 2, 20, 9, 0, tzinfo=new_york)  # 28 days later crosses the March DST change
    facts = [Fact("o", "medication", start, {"drug_class": "opioid_ir", "action": "started"})]
    result = evaluate(facts, start + timedelta(days=1))
    due = next(d.due_at for d in result.deadlines if d.kind == "opioid_review_4w")
    assert due == start.astimezone(UTC) + timedelta(hours=28 * 24)
    assert due.utcoffset() == timedelta(0)


def test_naive_now_is_rejected():
    with pytest.raises(ValueError):
        evaluate([], datetime(2026, 1, 1))


def test_naive_fact_is_rejected():
    with pytest.raises(ValueError):
        Fact("x", "surgery", datetime(2026, 1, 1), {"procedure": "other"})


def test_stop_without_start_and_dose_change_without_start_are_ignored():
    facts = [med(1, "opioid_ir", "stopped"), med(2, "opioid_er", "dose_increased", mme=90), surgery(3)]
    result = assess(facts, 40)
    assert not {d.kind for d in result.deadlines} & {"opioid_review_4w", "opioid_review_dose_change"}
    assert "naloxone_indicated" not in {f.code for f in result.flags}


def test_same_instant_ties_do_not_depend_on_input_order():
    facts = [
        pain(5, 8, id_="a"),
        pain(5, 3, id_="b"),
        fact("neuro_exam", 5, {"progressive_deficit": False}),
        *evaluation_complete(),
    ]
    assert assess(facts, 6).to_dict() == assess(list(reversed(facts)), 6).to_dict()
