"""The clinical review's unsafe stories (pathway-spec §7), replayed black-box through
`POST /v1/pathway:evaluate`. Each test names the §7 item it pins; expectations come from the spec text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from spec_client import SEC, SpecClient, at, deadlines, flags, u, utc

from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings: Settings) -> SpecClient:
    return SpecClient(settings)


def surgery(t: datetime) -> dict[str, Any]:
    return u("surgery", t, 2, procedure="laminectomy", levels=["L4-L5"])


def pain(t: datetime, nrs: int, dist: str = "axial", **extra: Any) -> dict[str, Any]:
    return u("pain_assessment", t, -5, pain_nrs=nrs, distribution=dist, **extra)


def med(t: datetime, cls: str, action: str = "started", **extra: Any) -> dict[str, Any]:
    return u("medication", t, None, drug_class=cls, action=action, **extra)


def review(t: datetime, relief: bool, **extra: Any) -> dict[str, Any]:
    return u("opioid_review", t, None, meaningful_relief=relief, **extra)


def neuro(t: datetime, red: bool = False) -> dict[str, Any]:
    return u("neuro_exam", t, None, progressive_deficit=red)


def evaluation(t: datetime, nrs: int = 8, dist: str = "axial") -> list[dict[str, Any]]:
    return [u("imaging", t, None, modality="mri", findings=["no_surgical_target"]), neuro(t), pain(t, nrs, dist)]


def rec_text(assessment: dict[str, Any], code: str) -> str:
    return next(r["text"] for r in assessment["recommendations"] if r["code"] == code)


def test_7_2_7_3_early_no_relief_review_flags_and_asks_for_a_taper_follow_up(api: SpecClient) -> None:
    history = [surgery(at(-60)), med(at(0), "nsaid"), med(at(1), "opioid_ir", mme_per_day=30), review(at(15), False)]
    a = api.evaluate(history, at(16))
    assert "opioid_no_meaningful_relief" in flags(a)
    assert deadlines(a, "opioid_taper_follow_up") == [(at(43), "pending")]  # review + 28 days
    # the early review is no 4-week reassessment (needs >= 21 days after the start)
    assert deadlines(a, "opioid_review_4w") == [(at(29), "pending")]
    text = rec_text(a, "opioid_no_meaningful_relief")
    assert "taper or stop" in text and "monthly" in text
    # 6 days 23 hours into the episode is not yet "7 days": no flag, no taper follow-up
    b = api.evaluate([*history[:-1], review(at(8) - SEC, False)], at(9))
    assert "opioid_no_meaningful_relief" not in flags(b)
    assert deadlines(b, "opioid_taper_follow_up") == []


def test_7_1_7_2_review_saying_relief_with_pain_at_baseline_is_no_relief(api: SpecClient) -> None:
    history = [surgery(at(-60)), *evaluation(at(-30), nrs=7), med(at(0), "nsaid"), med(at(1), "opioid_ir")]
    a = api.evaluate([*history, review(at(10), True, pain_nrs=7)], at(11))
    assert "responding_to_treatment" not in flags(a)
    assert "opioid_no_meaningful_relief" in flags(a)
    b = api.evaluate([*history, review(at(10), True, pain_nrs=6)], at(11))
    assert "responding_to_treatment" in flags(b) and "opioid_no_meaningful_relief" not in flags(b)


def test_7_4_opioid_and_benzodiazepine_at_any_dose_needs_naloxone(api: SpecClient) -> None:
    history = [surgery(at(-60)), med(at(0), "nsaid"), med(at(1), "opioid_ir", mme_per_day=10)]
    assert "naloxone_indicated" not in flags(api.evaluate(history, at(3)))
    a = api.evaluate([*history, med(at(2), "benzodiazepine", name="alprazolam")], at(3))
    assert {"naloxone_indicated", "opioid_benzodiazepine_coprescription"} <= flags(a)
    assert "benzodiazepine" in rec_text(a, "naloxone_indicated")
    assert a["current_mme"] == 10


def test_7_4_er_opioid_without_mme_plus_alprazolam(api: SpecClient) -> None:
    history = [surgery(at(-60)), med(at(1), "opioid_er", name="oxycodone ER"), med(at(2), "benzodiazepine")]
    a = api.evaluate(history, at(3))
    assert {"opioid_mme_unknown", "naloxone_indicated"} <= flags(a)
    assert a["current_mme"] is None
    assert "MME" in rec_text(a, "opioid_mme_unknown")


def test_7_4_substance_use_disorder_or_prior_overdose_needs_naloxone(api: SpecClient) -> None:
    for factor in ("substance_use_disorder", "prior_overdose"):
        history = [surgery(at(-60)), u("psychosocial", at(0), None, factors=[factor]), med(at(1), "opioid_ir")]
        a = api.evaluate(history, at(2))
        assert "naloxone_indicated" in flags(a), factor
        assert factor.replace("_", " ") in rec_text(a, "naloxone_indicated")


def test_7_6_red_flag_then_clear_exam_keeps_the_referral_until_a_surgical_evaluation(api: SpecClient) -> None:
    history = [surgery(at(0)), *evaluation(at(30)), neuro(at(40), red=True)]
    urgent = api.evaluate(history, at(41))
    assert urgent["stage"] == "urgent_surgical_evaluation" and "red_flag_neuro" in flags(urgent)
    cleared = api.evaluate([*history, neuro(at(42))], at(43))
    assert cleared["stage"] == "first_line"
    assert deadlines(cleared, "urgent_surgical_referral") == [(at(40), "pending")]
    assert "surgical_evaluation_pending" in flags(cleared) and "red_flag_neuro" not in flags(cleared)
    evaluated = api.evaluate(
        [*history, neuro(at(42)), u("surgical_evaluation", at(44), None, outcome="no_surgery_indicated")], at(45)
    )
    assert deadlines(evaluated, "urgent_surgical_referral") == [(at(40), "satisfied")]
    assert "surgical_evaluation_pending" not in flags(evaluated)


def test_7_6_surgical_evaluation_ends_the_urgent_stage_and_its_planned_surgery_meets_criteria(
    api: SpecClient,
) -> None:
    history = [surgery(at(0)), *evaluation(at(30)), neuro(at(40), red=True)]
    planned = [*history, u("surgical_evaluation", at(41), None, outcome="surgery_planned")]
    a = api.evaluate(planned, at(42))
    assert a["stage"] == "first_line"  # still red on the latest exam, but evaluated
    b = api.evaluate([*planned, u("procedure", at(50), None, kind="repeat_surgery")], at(51))
    assert "repeat_surgery_criteria_unmet" not in flags(b)


def test_7_7_positive_scs_trial_in_first_line_with_axial_pain_is_not_an_implant(api: SpecClient) -> None:
    history = [surgery(at(0)), *evaluation(at(30), dist="axial"), u("procedure", at(35), None, kind="scs_trial")]
    history[-1]["data"]["relief_percent"] = 70
    a = api.evaluate(history, at(36))
    assert "scs_implant_criteria_unmet" in flags(a) and "scs_trial_positive" not in flags(a)
    text = rec_text(a, "scs_implant_criteria_unmet")
    assert "implant may be considered" not in text.lower()
    assert "first line" in text and "axial" in text and "psychological evaluation" in text
    assert all("implant may be considered" not in r["text"].lower() for r in a["recommendations"])


def test_7_1_a_day_2_post_operative_score_is_not_the_baseline(api: SpecClient) -> None:
    history = [
        surgery(at(0)),
        *evaluation(at(2), nrs=9),  # acute post-operative pain: completes the evaluation, is no baseline
        med(at(3), "nsaid"),
        u("therapy", at(3), None, kind="physical_therapy", status="started"),
        pain(at(31), 6),
    ]
    a = api.evaluate(history, at(46))
    # 9 -> 6 would have been "responding" for ever; the day-31 score is the baseline, and fails against itself
    assert "responding_to_treatment" not in flags(a)
    assert a["stage"] == "second_line"
    assert a["pain"]["baseline"]["pain_nrs"] == 6 and utc(a["pain"]["baseline"]["at"]) == at(31)
    assert a["stage_reason"]["text"].startswith("In second line since 2026-02-19")
    before = api.evaluate(history[:-1] + [pain(at(28) - SEC, 6)], at(29))
    assert before["pain"]["baseline"] is None and before["pain"]["latest"]["pain_nrs"] == 6


def test_7_5_initial_evaluation_overdue_counts_from_the_presentation(api: SpecClient) -> None:
    early = api.evaluate([surgery(at(0)), pain(at(3), 8)], at(4))
    assert deadlines(early, "initial_evaluation_overdue") == [(at(42), "pending")]
    late = api.evaluate([surgery(at(0)), pain(at(700), 8)], at(701))
    assert deadlines(late, "initial_evaluation_overdue") == [(at(714), "pending")]


def test_7_12_output_explains_stage_pain_mme_and_sources(api: SpecClient) -> None:
    history = [surgery(at(0)), *evaluation(at(30), nrs=8), med(at(31), "opioid_ir", mme_per_day=40)]
    a = api.evaluate(history, at(32))
    assert a["stage_reason"]["text"] and a["stage_reason"]["fact_ids"]
    assert "2026-02-04" in a["stage_reason"]["text"]  # the day the evaluation completed
    assert a["pain"]["latest"]["fact_id"] == "u3" and a["pain"]["change_percent"] == 0
    assert a["current_mme"] == 40
    for rec in a["recommendations"]:
        assert [s["code"] for s in rec["sources"]] == rec["citation"].split("; ")
        assert all(s["title"] for s in rec["sources"])
    for deadline in a["deadlines"]:
        assert [s["code"] for s in deadline["sources"]] == deadline["citation"].split("; ")
    cdc = next(s for d in a["deadlines"] for s in d["sources"] if s["code"] == "CDC22")
    assert cdc["url"] == "https://www.cdc.gov/mmwr/volumes/71/rr/rr7103a1.htm"
    g3 = next(s for r in a["recommendations"] for s in r["sources"] if s["code"] == "G3")
    assert g3["url"] is None


def test_intake_validates_the_2026_2_update_types(api: SpecClient) -> None:
    good = u("surgical_evaluation", at(1), None, outcome="declined")
    assert api.evaluate([good], at(2))["updates_evaluated"] == 1
    for bad in (
        u("surgical_evaluation", at(1), None, outcome="maybe"),
        u("surgical_evaluation", at(1), None),
        u("surgical_evaluation", at(1), None, outcome="declined", surgeon="x"),
        u("psychosocial", at(1), None, factors=["gambling"]),
    ):
        response = api.client.post(
            "/v1/pathway:evaluate", json={"updates": [bad], "now": "2026-01-10T00:00:00Z"}, headers=api.headers
        )
        assert response.status_code == 422, bad
    factors = u("psychosocial", at(1), None, factors=["substance_use_disorder", "prior_overdose"])
    assert api.evaluate([factors], at(2))["updates_evaluated"] == 1
