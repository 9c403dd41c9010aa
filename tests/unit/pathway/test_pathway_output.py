"""Spec §0 and §6: output shape, UTC timestamps, future facts and next_evaluation_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from services.pathway.rules.sources import SOURCES

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


# ---------------------------------------------------------------- §6 (2026.2): stage_reason, pain, MME, sources


def test_7_12_stage_reason_names_the_stage_entry_and_its_facts():
    result = assess(failed_first_line(outcome_nrs=7), 50)
    reason = result.stage_reason
    assert reason.text.startswith("In second line since 2026-02-19:")
    assert "active PT since 2026-01-08" in reason.text and "an NSAID" in reason.text
    assert "pain 7/10 on 2026-02-05 against a baseline of 7/10" in reason.text
    assert {"pt-start", "nsaid", "outcome"} <= set(reason.fact_ids)


def test_7_12_stage_reason_in_initial_evaluation_lists_what_is_missing():
    text = assess([surgery(0), neuro(1)], 2).stage_reason.text
    assert "MRI or CT and a pain assessment are still missing" in text


def test_7_12_stage_reason_while_urgent_names_the_exam_and_the_stage_underneath():
    text = assess([*failed_first_line(), neuro(60, True)], 61).stage_reason.text
    assert text.startswith("In urgent surgical evaluation since 2026-03-06")
    assert "progressive deficit" in text and "in second line since 2026-02-19" in text


def test_7_12_pain_trend_and_current_mme():
    result = assess([surgery(0), pain(2, 9), pain(28, 8, peg=6.5), pain(40, 6), med(41, "opioid_ir", mme=30)], 42)
    trend = result.to_dict()["pain"]
    assert trend["baseline"] == {
        "pain_nrs": 8,
        "function_peg": 6.5,
        "at": "2026-02-02T09:00:00Z",
        "fact_id": trend["baseline"]["fact_id"],
    }
    assert trend["latest"]["pain_nrs"] == 6 and trend["change_percent"] == -25.0
    assert result.to_dict()["current_mme"] == 30
    assert assess([surgery(0)], 1).to_dict()["pain"] == {"baseline": None, "latest": None, "change_percent": None}
    assert assess([med(1, "opioid_er")], 2).to_dict()["current_mme"] is None


def _sources_md() -> dict[str, tuple[str, str | None]]:
    rows = {}
    for line in Path("/work/shared/docs/sources.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("code", "---") and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = (cells[1], None if cells[2] == "—" else cells[2])
    return rows


@pytest.mark.skipif(not Path("/work/shared/docs/sources.md").exists(), reason="shared docs not mounted")
def test_7_12_source_catalogue_matches_sources_md():
    expected = _sources_md()
    assert set(SOURCES) == set(expected)
    for code, (title, url) in expected.items():
        assert SOURCES[code].url == url, code
        claims = title.split(": ", 1)[1] if code.startswith("G") else title
        assert claims.replace("`", "") in SOURCES[code].title, code


def test_7_12_every_recommendation_and_deadline_resolves_its_citation():
    result = assess([*refractory_history(), med(100, "opioid_er", mme=90), therapy(101, "tens")], 130).to_dict()
    for item in result["recommendations"] + result["deadlines"]:
        assert [s["code"] for s in item["sources"]] == item["citation"].split("; ")
        for source in item["sources"]:
            assert source["title"] == SOURCES[source["code"]].title and source["url"] == SOURCES[source["code"]].url
