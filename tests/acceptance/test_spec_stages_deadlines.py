"""Independent black-box audit of pathway-spec §0–§3 through `POST /v1/pathway:evaluate`.

Every expected value below was derived from the text of /work/shared/docs/pathway-spec.md (and, where the
spec is ambiguous, the reading recorded in docs/clinical-rules.md §7), not from the engine's code. Times are
days after T0 (2026-01-05 09:00 UTC); facts are written with various UTC offsets on purpose."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from spec_client import DAY, SEC, SpecClient, at, deadlines, flags, u, utc

from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings: Settings) -> SpecClient:
    return SpecClient(settings)


# ---------------------------------------------------------------- fact builders (spec §1 update types)
def surgery(t: datetime, off: float | None = None) -> dict[str, Any]:
    return u("surgery", t, off, procedure="laminectomy", levels=["L4-L5"])


def mri(t: datetime, off: float | None = None, modality: str = "mri") -> dict[str, Any]:
    return u("imaging", t, off, modality=modality, findings=["no_surgical_target"], indication="post-op")


def neuro(t: datetime, red: bool = False, off: float | None = None, cauda: bool = False) -> dict[str, Any]:
    return u("neuro_exam", t, off, progressive_deficit=red, cauda_equina_signs=cauda)


def pain(t: datetime, nrs: int, off: float | None = None, dist: str = "axial", **extra: Any) -> dict[str, Any]:
    return u("pain_assessment", t, off, pain_nrs=nrs, distribution=dist, **extra)


def med(t: datetime, cls: str, action: str = "started", off: float | None = None, **extra: Any) -> dict[str, Any]:
    return u("medication", t, off, drug_class=cls, action=action, **extra)


def pt(t: datetime, status: str, off: float | None = None, **extra: Any) -> dict[str, Any]:
    return u("therapy", t, off, kind="physical_therapy", status=status, **extra)


def therapy(t: datetime, kind: str, status: str, **extra: Any) -> dict[str, Any]:
    return u("therapy", t, None, kind=kind, status=status, **extra)


def procedure(t: datetime, kind: str, **extra: Any) -> dict[str, Any]:
    return u("procedure", t, None, kind=kind, **extra)


def monitoring(t: datetime, plan: bool = False, **extra: Any) -> dict[str, Any]:
    return u("opioid_monitoring", t, None, plan_documented=plan, **extra)


def review(t: datetime, relief: bool = True, **extra: Any) -> dict[str, Any]:
    return u("opioid_review", t, None, meaningful_relief=relief, **extra)


def first_line_history(baseline: int = 8) -> list[dict[str, Any]]:
    """Surgery at day 0; evaluation complete at day 1 (its day-1 score is acute post-operative pain, no
    baseline: spec §1, 2026.2); NSAID day 2; active PT started day 3; the baseline at day 28."""
    return [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 9),
        med(at(2), "nsaid"),
        pt(at(3), "started", modality="active"),
        pain(at(28), baseline),
    ]


PT = at(3)  # the PT start of first_line_history


def second_line_history() -> list[dict[str, Any]]:
    """first_line_history plus a failing assessment at PT + 28 d: second line from PT + 42 d."""
    return first_line_history() + [pain(PT + 28 * DAY, 8)]


SECOND = PT + 42 * DAY


def stage(a: dict[str, Any]) -> tuple[str, datetime | None]:
    return a["stage"], utc(a["stage_since"])


# ====================================================================== §0 conventions
def test_time_offsets_are_instants_and_output_is_utc(api: SpecClient) -> None:
    # surgery written at +05:30, evaluation facts at -08:00: "+14 days" is 14 x 24 h after the instant
    a = api.evaluate([surgery(at(0), 5.5), mri(at(20), -8), neuro(at(20), off=-8), pain(at(20), 6, -8)], at(30))
    # 2026.2: 14 days after the later of surgery + 28 days and the first other fact
    assert deadlines(a, "initial_evaluation_overdue") == [(at(42), "satisfied")]
    assert stage(a) == ("first_line", at(20))
    for d in a["deadlines"]:
        assert d["due_at"].endswith("Z") or d["due_at"].endswith("+00:00")
    assert a["stage_since"].endswith("Z") or a["stage_since"].endswith("+00:00")
    assert utc(a["evaluated_at"]) == at(30)


def test_time_day_arithmetic_ignores_offset_across_dst(api: SpecClient) -> None:
    # PT start written in New York winter time (-05:00); +28 d is exactly 672 h later in UTC
    start = datetime.fromisoformat("2026-02-20T09:00:00-05:00")
    a = api.evaluate(
        [surgery(start - DAY), u("therapy", start, -5, kind="physical_therapy", status="started")], start + 10 * DAY
    )
    assert deadlines(a, "pt_follow_up") == [(start + 28 * DAY, "pending")]


def test_fact_exactly_at_now_counts_and_facts_after_now_do_not(api: SpecClient) -> None:
    history = [surgery(at(0)), mri(at(1)), neuro(at(1)), pain(at(5), 7)]
    a = api.evaluate(history, at(5))
    assert stage(a) == ("first_line", at(5))
    b = api.evaluate(history, at(5) - SEC)
    assert b["stage"] == "initial_evaluation"
    assert b["updates_evaluated"] == 4  # the future-dated fact is seen and counted
    # the future fact comes into effect at day 5: a time-driven change
    assert utc(b["next_evaluation_at"]) == at(5)


def test_future_facts_produce_no_deadlines_yet(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), med(at(10), "opioid_ir", mme_per_day=20)], at(5))
    assert deadlines(a, "opioid_monitoring_plan") == []
    assert deadlines(a, "opioid_review_4w") == []
    assert a["updates_evaluated"] == 2
    assert utc(a["next_evaluation_at"]) == at(10)


@pytest.mark.parametrize("reverse", [False, True])
def test_order_same_instant_neuro_exams_red_flag_counts_as_latest(api: SpecClient, reverse: bool) -> None:
    exams = [neuro(at(2), red=False), neuro(at(2), red=True)]
    if reverse:
        exams.reverse()
    a = api.evaluate([surgery(at(0)), mri(at(1)), pain(at(1), 6)] + exams, at(3))
    assert stage(a) == ("urgent_surgical_evaluation", at(2))
    # the clear exam is not *later* than the red one: the referral stays pending
    assert deadlines(a, "urgent_surgical_referral") == [(at(2), "pending")]


@pytest.mark.parametrize("reverse", [False, True])
def test_order_same_instant_pain_assessments_by_compact_json_not_arrival(api: SpecClient, reverse: bool) -> None:
    # same instant, same type: ordered by sorted-key compact JSON; "axial" < "radicular", so the axial 8 is
    # the earliest (baseline) and the radicular 2 the latest: 2 <= 0.7 x 8, meaningful relief
    pair = [pain(at(1), 8, dist="axial"), pain(at(1), 2, dist="radicular")]
    if reverse:
        pair.reverse()
    a = api.evaluate([surgery(at(-30)), mri(at(1)), neuro(at(1))] + pair, at(2))
    assert "responding_to_treatment" in flags(a)


def test_order_arrival_never_matters_for_a_whole_history(api: SpecClient) -> None:
    history = second_line_history() + [review(at(40)), med(at(10), "opioid_ir", mme_per_day=30)]
    forward = api.evaluate(history, at(80))
    backward = api.evaluate(list(reversed(history)), at(80))
    # fact ids are positions in the request, so compare everything but them
    for key in ("stage", "stage_since", "next_evaluation_at"):
        assert forward[key] == backward[key]
    assert flags(forward) == flags(backward)
    for kind in {d["kind"] for d in forward["deadlines"] + backward["deadlines"]}:
        assert deadlines(forward, kind) == deadlines(backward, kind)


# ====================================================================== §1 derived terms
def test_relief_exactly_30_percent_is_meaningful(api: SpecClient) -> None:
    base = [surgery(at(-30)), mri(at(1)), neuro(at(1)), pain(at(1), 10)]
    assert "responding_to_treatment" in flags(api.evaluate(base + [pain(at(5), 7)], at(6)))
    assert "responding_to_treatment" not in flags(api.evaluate(base + [pain(at(5), 8)], at(6)))


def test_relief_needs_peg_30_percent_lower_when_both_carry_it(api: SpecClient) -> None:
    base = [surgery(at(-30)), mri(at(1)), neuro(at(1)), pain(at(1), 10, function_peg=10)]
    assert "responding_to_treatment" not in flags(api.evaluate(base + [pain(at(5), 5, function_peg=8)], at(6)))
    assert "responding_to_treatment" in flags(api.evaluate(base + [pain(at(5), 5, function_peg=7)], at(6)))
    # only one of them carries PEG: the pain test alone decides
    assert "responding_to_treatment" in flags(api.evaluate(base + [pain(at(5), 5)], at(6)))


def test_relief_baseline_pain_zero_uses_peg_only(api: SpecClient) -> None:
    base = [surgery(at(-30)), mri(at(1)), neuro(at(1)), pain(at(1), 0, function_peg=10)]
    assert "responding_to_treatment" in flags(api.evaluate(base + [pain(at(5), 3, function_peg=7)], at(6)))
    assert "responding_to_treatment" not in flags(api.evaluate(base + [pain(at(5), 0, function_peg=8)], at(6)))


def test_relief_latest_assessment_decides(api: SpecClient) -> None:
    base = [surgery(at(-30)), mri(at(1)), neuro(at(1)), pain(at(1), 10), pain(at(5), 3)]
    assert "responding_to_treatment" in flags(api.evaluate(base, at(6)))
    assert "responding_to_treatment" not in flags(api.evaluate(base + [pain(at(7), 9)], at(8)))


def test_relief_stated_by_therapy_or_review_until_a_later_assessment_fails(api: SpecClient) -> None:
    base = [surgery(at(-30)), mri(at(1)), neuro(at(1)), pain(at(1), 8)]
    stated = base + [therapy(at(5), "cbt", "progress", meaningful_relief=True)]
    assert "responding_to_treatment" in flags(api.evaluate(stated, at(6)))
    # a failing assessment *after* the statement ends it; one before it does not
    assert "responding_to_treatment" not in flags(api.evaluate(stated + [pain(at(7), 8)], at(8)))
    assert "responding_to_treatment" in flags(api.evaluate(stated + [pain(at(4), 8)], at(8)))
    # the latest statement decides: a later review saying false ends it
    assert "responding_to_treatment" not in flags(api.evaluate(stated + [review(at(6), relief=False)], at(8)))
    # a later review saying true after a failing assessment restores it
    assert "responding_to_treatment" in flags(
        api.evaluate(stated + [pain(at(7), 8), review(at(9), relief=True)], at(10))
    )


def test_relief_does_not_carry_into_a_new_episode(api: SpecClient) -> None:
    history = [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 10),
        pain(at(5), 3),
        surgery(at(10)),
        pain(at(11), 3),
    ]
    # new baseline is the day-11 assessment (3): no relief in the new episode
    assert "responding_to_treatment" not in flags(api.evaluate(history, at(12)))


def test_course_dose_change_without_course_is_ignored(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), med(at(5), "opioid_ir", "dose_increased", mme_per_day=60)], at(60))
    assert deadlines(a, "opioid_review_dose_change") == []
    assert deadlines(a, "opioid_monitoring_plan") == []  # not on opioids: no opioid episode
    assert "opioid_tolerance_risk" not in flags(a)


def test_course_start_while_open_changes_nothing(api: SpecClient) -> None:
    a = api.evaluate(
        [surgery(at(0)), med(at(1), "opioid_ir", mme_per_day=20), med(at(10), "opioid_ir", mme_per_day=90)], at(20)
    )
    assert deadlines(a, "opioid_review_4w") == [(at(29), "pending")]
    assert "naloxone_indicated" not in flags(a)  # the second start's MME changes nothing


def test_course_stop_and_start_same_instant_continue_the_course(api: SpecClient) -> None:
    a = api.evaluate(
        [surgery(at(0)), med(at(1), "opioid_ir"), med(at(10), "opioid_ir", "stopped"), med(at(10), "opioid_ir")], at(40)
    )
    assert deadlines(a, "opioid_review_4w") == [(at(29), "pending")]
    assert deadlines(a, "opioid_monitoring_plan") == [(at(1), "pending")]
    assert "opioid_tolerance_risk" in flags(a)  # continuously on opioids since day 1


def test_opioid_episode_spans_overlapping_and_handed_over_courses(api: SpecClient) -> None:
    # IR [1, 10), ER [10, 20): no instant without an open opioid course -> one opioid episode
    a = api.evaluate(
        [
            surgery(at(0)),
            med(at(1), "opioid_ir"),
            med(at(10), "opioid_er"),
            med(at(10), "opioid_ir", "stopped"),
            med(at(20), "opioid_er", "stopped"),
        ],
        at(40),
    )
    assert deadlines(a, "opioid_monitoring_plan") == [(at(1), "cancelled")]
    assert deadlines(a, "pdmp_review") == [(at(1), "cancelled")]
    # a gap makes a second episode
    b = api.evaluate(
        [surgery(at(0)), med(at(1), "opioid_ir"), med(at(5), "opioid_ir", "stopped"), med(at(6), "opioid_er")], at(7)
    )
    assert deadlines(b, "opioid_monitoring_plan") == [(at(1), "cancelled"), (at(6), "pending")]


def test_current_mme_sums_open_courses_latest_dose(api: SpecClient) -> None:
    base = [surgery(at(0)), med(at(1), "opioid_ir", mme_per_day=30), med(at(2), "opioid_er", mme_per_day=20)]
    assert "naloxone_indicated" in flags(api.evaluate(base, at(3)))  # 50 >= 50
    lower = base + [med(at(4), "opioid_er", "dose_decreased", mme_per_day=19)]
    assert "naloxone_indicated" not in flags(api.evaluate(lower, at(5)))  # 49
    stopped = base + [med(at(4), "opioid_er", "stopped")]
    assert "naloxone_indicated" not in flags(api.evaluate(stopped, at(5)))  # 30
    # an open course without MME adds nothing; the other course's 60 still counts
    assert "naloxone_indicated" in flags(
        api.evaluate([surgery(at(0)), med(at(1), "opioid_ir"), med(at(2), "opioid_er", mme_per_day=60)], at(3))
    )


# ====================================================================== §2 stages
def test_initial_evaluation_needs_mri_or_ct_neuro_and_pain_in_the_episode(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), mri(at(1), modality="xray"), neuro(at(1)), pain(at(1), 5)], at(5))
    assert stage(a) == ("initial_evaluation", at(0))
    b = api.evaluate([surgery(at(0)), mri(at(2), modality="ct"), neuro(at(1)), pain(at(3), 5)], at(5))
    assert stage(b) == ("first_line", at(3))  # the latest of the three completed it
    # imaging before the surgery belongs to the earlier episode
    c = api.evaluate([mri(at(-1)), surgery(at(0)), neuro(at(1)), pain(at(1), 5)], at(5))
    assert c["stage"] == "initial_evaluation"


def test_episode_without_surgery_starts_at_earliest_fact(api: SpecClient) -> None:
    a = api.evaluate([pain(at(0), 5), neuro(at(3))], at(5))
    assert stage(a) == ("initial_evaluation", at(0))
    assert deadlines(a, "initial_evaluation_overdue") == [(at(14), "pending")]


def test_second_line_at_exactly_42_days_not_one_second_before(api: SpecClient) -> None:
    history = second_line_history()
    before = api.evaluate(history, SECOND - SEC)
    assert stage(before) == ("first_line", at(1))
    assert utc(before["next_evaluation_at"]) == SECOND
    assert stage(api.evaluate(history, SECOND)) == ("second_line", SECOND)


def test_second_line_assessment_exactly_28_days_after_pt_counts(api: SpecClient) -> None:
    early = first_line_history() + [pain(PT + 28 * DAY - SEC, 8)]
    a = api.evaluate(early, at(80))
    assert a["stage"] == "first_line"
    assert deadlines(a, "first_line_review") == [(SECOND, "pending")]
    b = api.evaluate(second_line_history(), at(80))
    assert stage(b) == ("second_line", SECOND)
    assert deadlines(b, "first_line_review") == [(SECOND, "satisfied")]


def test_second_line_entered_when_late_assessment_arrives(api: SpecClient) -> None:
    a = api.evaluate(first_line_history() + [pain(at(60), 8)], at(80))
    assert stage(a) == ("second_line", at(60))


def test_second_line_needs_latest_assessment_without_relief(api: SpecClient) -> None:
    # the failing PT+28 assessment is followed (before PT+42) by one showing relief: no second line
    a = api.evaluate(second_line_history() + [pain(at(40), 5)], at(80))
    assert a["stage"] == "first_line"
    assert "responding_to_treatment" in flags(a)


def test_second_line_needs_active_pt(api: SpecClient) -> None:
    history = [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 8),
        med(at(2), "nsaid"),
        pt(PT, "started", modality="passive"),
        pain(PT + 30 * DAY, 8),
    ]
    assert api.evaluate(history, at(80))["stage"] == "first_line"


def test_second_line_non_opioid_course_open_at_episode_start_counts(api: SpecClient) -> None:
    history = [
        med(at(-5), "gabapentinoid"),
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 8),
        pt(PT, "started"),
        pain(PT + 28 * DAY, 8),
    ]
    assert stage(api.evaluate(history, at(80))) == ("second_line", SECOND)
    # stopped before the surgery: not open at the episode start, none started in it
    closed = history + [med(at(-1), "gabapentinoid", "stopped")]
    assert api.evaluate(closed, at(80))["stage"] == "first_line"
    # an opioid is not a non-opioid analgesic
    opioid = [h for h in history if h["type"] != "medication"] + [med(at(2), "opioid_ir")]
    assert api.evaluate(opioid, at(80))["stage"] == "first_line"


def test_second_line_non_opioid_started_in_episode_and_stopped_still_counts(api: SpecClient) -> None:
    history = second_line_history() + [med(at(10), "nsaid", "stopped")]
    assert stage(api.evaluate(history, at(80))) == ("second_line", SECOND)


def test_escalation_is_one_way_and_improvement_adds_responding(api: SpecClient) -> None:
    a = api.evaluate(second_line_history() + [pain(at(60), 2)], at(80))
    assert stage(a) == ("second_line", SECOND)
    assert "responding_to_treatment" in flags(a)


def refractory_history(cbt_day: float = 10, proc_day: float = 50) -> list[dict[str, Any]]:
    return second_line_history() + [
        therapy(at(cbt_day), "cbt", "started"),
        procedure(at(proc_day), "epidural_steroid_injection", approach="interlaminar", image_guided=True),
    ]


def test_refractory_at_exactly_56_days_of_psychological_therapy(api: SpecClient) -> None:
    history = refractory_history(cbt_day=10)
    entry = at(66)
    before = api.evaluate(history, entry - SEC)
    assert stage(before) == ("second_line", SECOND)
    assert utc(before["next_evaluation_at"]) == entry
    assert stage(api.evaluate(history, entry)) == ("refractory", entry)


def test_refractory_entry_is_latest_of_its_criteria(api: SpecClient) -> None:
    # cbt long before second line, procedure after it: entry is the procedure
    a = api.evaluate(refractory_history(cbt_day=0.5, proc_day=70), at(90))
    assert stage(a) == ("refractory", at(70))
    # cbt and procedure early: entry is cbt + 56 days (day 60, after second line's day 45)
    b = api.evaluate(refractory_history(cbt_day=4, proc_day=20), at(90))
    assert stage(b) == ("refractory", at(60))
    # all refractory criteria already held when second line was entered: entry is second line's entry
    c = api.evaluate(
        first_line_history()
        + [
            therapy(at(1), "cbt", "started"),
            procedure(at(2), "medial_branch_block", relief_percent=10),
            pain(at(70), 8),
        ],
        at(90),
    )
    assert stage(c) == ("refractory", at(70))


def test_refractory_needs_interventional_procedure_and_no_relief(api: SpecClient) -> None:
    no_proc = second_line_history() + [therapy(at(10), "cbt", "started"), procedure(at(50), "scs_implant")]
    assert api.evaluate(no_proc, at(90))["stage"] == "second_line"
    relief = refractory_history(cbt_day=10, proc_day=50) + [pain(at(60), 3)]
    a = api.evaluate(relief, at(90))
    assert a["stage"] == "second_line"
    referred = second_line_history() + [
        therapy(at(10), "cbt", "referred"),
        procedure(at(50), "medial_branch_block", relief_percent=20),
    ]
    assert api.evaluate(referred, at(90))["stage"] == "second_line"


def test_urgent_comes_and_goes_with_stage_since(api: SpecClient) -> None:
    history = second_line_history() + [neuro(at(50), red=True), neuro(at(52), red=False, cauda=True)]
    a = api.evaluate(history, at(53))
    assert stage(a) == ("urgent_surgical_evaluation", at(50))  # first exam of the unbroken run
    back = history + [neuro(at(55))]
    assert stage(api.evaluate(back, at(56))) == ("second_line", SECOND)
    again = back + [neuro(at(60), red=True)]
    assert stage(api.evaluate(again, at(61))) == ("urgent_surgical_evaluation", at(60))


def test_urgent_pathway_keeps_evolving_underneath(api: SpecClient) -> None:
    # red exam completes the neuro part; under urgency the patient reaches first line then second line
    history = [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1), red=True),
        pain(at(1), 8),
        med(at(2), "nsaid"),
        pt(PT, "started"),
        pain(PT + 28 * DAY, 8),
    ]
    a = api.evaluate(history, at(60))
    assert stage(a) == ("urgent_surgical_evaluation", at(1))
    b = api.evaluate(history + [neuro(at(58))], at(60))
    assert stage(b) == ("second_line", SECOND)


def test_7_6_a_surgery_after_a_red_flag_evaluates_it_and_ends_the_urgent_stage(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), neuro(at(5), red=True), surgery(at(10))], at(11))
    assert stage(a) == ("initial_evaluation", at(10))
    assert deadlines(a, "urgent_surgical_referral") == [(at(5), "satisfied")]
    assert not flags(a) & {"red_flag_neuro", "surgical_evaluation_pending"}
    # a red flag of the previous episode that no surgery followed still counts (any episode)
    b = api.evaluate([surgery(at(0)), neuro(at(5), red=True), surgery(at(5))], at(11))
    assert stage(b) == ("urgent_surgical_evaluation", at(5))


def test_new_surgery_restarts_the_pathway(api: SpecClient) -> None:
    a = api.evaluate(second_line_history() + [surgery(at(70))], at(75))
    assert stage(a) == ("initial_evaluation", at(70))
    # the new episode holds only its surgery: no deadline yet (2026.2, §3)
    assert deadlines(a, "initial_evaluation_overdue") == [(at(42), "satisfied")]
    # first-line review of the first episode was satisfied before the new episode
    assert deadlines(a, "first_line_review") == [(SECOND, "satisfied")]


def test_backdated_fact_changes_the_stage(api: SpecClient) -> None:
    # a relief assessment posted late but dated between PT+28 and PT+42 keeps the patient in first line
    history = second_line_history()
    assert api.evaluate(history, at(80))["stage"] == "second_line"
    assert api.evaluate(history + [pain(at(35), 4)], at(80))["stage"] == "first_line"


def test_next_evaluation_for_28_days_on_opioids(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), med(at(1), "opioid_ir", mme_per_day=10)], at(5))
    assert utc(a["next_evaluation_at"]) == at(29)
    assert "opioid_tolerance_risk" not in flags(a)
    b = api.evaluate([surgery(at(0)), med(at(1), "opioid_ir", mme_per_day=10)], at(29))
    assert "opioid_tolerance_risk" in flags(b)


# ====================================================================== §3 deadlines
def test_urgent_referral_each_red_exam_and_what_satisfies_it(api: SpecClient) -> None:
    base = [surgery(at(0))]
    a = api.evaluate(base + [neuro(at(2), red=True), neuro(at(4), red=True)], at(5))
    # a run of red-flag exams with no evaluation between them is one referral (2026.2)
    assert deadlines(a, "urgent_surgical_referral") == [(at(2), "pending")]
    # a later clear exam does not close it (7.6)
    b = api.evaluate(base + [neuro(at(2), red=True), neuro(at(4), red=True), neuro(at(6))], at(7))
    assert deadlines(b, "urgent_surgical_referral") == [(at(2), "pending")]
    e = api.evaluate(
        base + [neuro(at(2), red=True), neuro(at(6)), u("surgical_evaluation", at(6), None, outcome="declined")], at(7)
    )
    assert deadlines(e, "urgent_surgical_referral") == [(at(2), "satisfied")]
    c = api.evaluate(base + [neuro(at(2), red=True), procedure(at(3), "repeat_surgery")], at(7))
    assert deadlines(c, "urgent_surgical_referral") == [(at(2), "satisfied")]
    # a surgery at the very instant of the exam is not later
    d = api.evaluate([neuro(at(2), red=True), surgery(at(2))], at(7))
    assert deadlines(d, "urgent_surgical_referral") == [(at(2), "pending")]


def test_initial_evaluation_overdue_satisfied_late_or_cancelled_by_new_episode(api: SpecClient) -> None:
    # 7.5: due 14 days after the later of surgery + 28 days and the episode's first other fact
    late = api.evaluate([surgery(at(0)), mri(at(20)), neuro(at(20)), pain(at(20), 5)], at(21))
    assert deadlines(late, "initial_evaluation_overdue") == [(at(42), "satisfied")]
    cancelled = api.evaluate([surgery(at(0)), mri(at(3)), surgery(at(10))], at(11))
    assert deadlines(cancelled, "initial_evaluation_overdue") == [(at(42), "cancelled")]
    pending = api.evaluate([surgery(at(0)), mri(at(3))], at(30))
    assert deadlines(pending, "initial_evaluation_overdue") == [(at(42), "pending")]
    enrolled_late = api.evaluate([surgery(at(0)), mri(at(400))], at(401))
    assert deadlines(enrolled_late, "initial_evaluation_overdue") == [(at(414), "pending")]
    surgery_only = api.evaluate([surgery(at(0))], at(100))
    assert deadlines(surgery_only, "initial_evaluation_overdue") == []


def test_pre_surgery_facts_form_an_episode_cancelled_by_the_surgery(api: SpecClient) -> None:
    a = api.evaluate([pain(at(-20), 5), surgery(at(0))], at(1))
    # the new episode holds nothing but its surgery: no deadline of its own yet (2026.2)
    assert deadlines(a, "initial_evaluation_overdue") == [(at(-6), "cancelled")]


def test_opioid_monitoring_plan_window_is_inclusive_30_days_before(api: SpecClient) -> None:
    base = [surgery(at(-40)), med(at(0), "opioid_ir")]
    a = api.evaluate(base + [monitoring(at(-30), plan=True)], at(1))
    assert deadlines(a, "opioid_monitoring_plan") == [(at(0), "satisfied")]
    b = api.evaluate(base + [monitoring(at(-30) - SEC, plan=True)], at(1))
    assert deadlines(b, "opioid_monitoring_plan") == [(at(0), "pending")]
    c = api.evaluate(base + [monitoring(at(3), plan=False, pdmp_checked=True)], at(5))
    assert deadlines(c, "opioid_monitoring_plan") == [(at(0), "pending")]


def test_opioid_monitoring_plan_after_episode_end_is_cancelled_same_instant_satisfied(api: SpecClient) -> None:
    base = [surgery(at(-1)), med(at(0), "opioid_ir"), med(at(5), "opioid_ir", "stopped")]
    a = api.evaluate(base + [monitoring(at(6), plan=True)], at(7))
    assert deadlines(a, "opioid_monitoring_plan") == [(at(0), "cancelled")]
    b = api.evaluate(base + [monitoring(at(5), plan=True)], at(7))
    assert deadlines(b, "opioid_monitoring_plan") == [(at(0), "satisfied")]


def test_opioid_review_4w_per_course(api: SpecClient) -> None:
    base = [surgery(at(-1)), med(at(0), "opioid_ir"), med(at(3), "opioid_er")]
    a = api.evaluate(base, at(5))
    assert deadlines(a, "opioid_review_4w") == [(at(28), "pending"), (at(31), "pending")]
    # a review at the very start instant is not "after" it
    b = api.evaluate(base + [review(at(0))], at(5))
    assert deadlines(b, "opioid_review_4w") == [(at(28), "pending"), (at(31), "pending")]
    # 7.2: only a review at least 21 days after the course start is the 4-week reassessment
    early = api.evaluate(base + [review(at(2))], at(5))
    assert deadlines(early, "opioid_review_4w") == [(at(28), "pending"), (at(31), "pending")]
    c = api.evaluate(base + [review(at(21))], at(22))
    assert deadlines(c, "opioid_review_4w") == [(at(28), "satisfied"), (at(31), "pending")]
    c2 = api.evaluate(base + [review(at(21) - SEC)], at(22))
    assert deadlines(c2, "opioid_review_4w") == [(at(28), "pending"), (at(31), "pending")]
    # IR stopped before any review: cancelled; ER then reviewed 21 days after its start
    d = api.evaluate(base + [med(at(4), "opioid_ir", "stopped"), review(at(24))], at(25))
    assert deadlines(d, "opioid_review_4w") == [(at(28), "cancelled"), (at(31), "satisfied")]
    # stop and review at the same instant: satisfied wins
    e = api.evaluate(base + [med(at(21), "opioid_ir", "stopped"), review(at(21))], at(22))
    assert deadlines(e, "opioid_review_4w") == [(at(28), "satisfied"), (at(31), "pending")]


def test_opioid_review_4w_merge_same_due(api: SpecClient) -> None:
    base = [surgery(at(-1)), med(at(0), "opioid_ir"), med(at(0), "opioid_er")]
    a = api.evaluate(base + [med(at(2), "opioid_ir", "stopped")], at(3))
    assert deadlines(a, "opioid_review_4w") == [(at(28), "pending")]  # pending over cancelled
    b = api.evaluate(base + [med(at(2), "opioid_ir", "stopped"), review(at(21))], at(22))
    assert deadlines(b, "opioid_review_4w") == [(at(28), "satisfied")]  # satisfied over cancelled


def test_opioid_review_dose_change(api: SpecClient) -> None:
    base = [
        surgery(at(-1)),
        med(at(0), "opioid_ir", mme_per_day=20),
        med(at(5), "opioid_ir", "dose_increased", mme_per_day=40),
    ]
    assert deadlines(api.evaluate(base, at(6)), "opioid_review_dose_change") == [(at(33), "pending")]
    assert deadlines(api.evaluate(base + [review(at(5))], at(6)), "opioid_review_dose_change") == [
        (at(33), "pending")
    ]  # not after the increase
    assert deadlines(api.evaluate(base + [review(at(7))], at(8)), "opioid_review_dose_change") == [
        (at(33), "satisfied")
    ]
    ended = base + [med(at(8), "opioid_ir", "stopped"), review(at(9))]
    assert deadlines(api.evaluate(ended, at(10)), "opioid_review_dose_change") == [(at(33), "cancelled")]
    # a dose decrease makes no such deadline
    dec = [
        surgery(at(-1)),
        med(at(0), "opioid_ir", mme_per_day=20),
        med(at(5), "opioid_ir", "dose_decreased", mme_per_day=10),
    ]
    assert deadlines(api.evaluate(dec, at(6)), "opioid_review_dose_change") == []


def test_opioid_review_periodic(api: SpecClient) -> None:
    base = [surgery(at(-1)), review(at(-0.5)), med(at(0), "opioid_ir"), review(at(10)), review(at(50))]
    a = api.evaluate(base, at(60))
    # the review before the opioid start was not made on opioids
    assert deadlines(a, "opioid_review_periodic") == [(at(100), "satisfied"), (at(140), "pending")]
    ended = base + [med(at(70), "opioid_ir", "stopped")]
    b = api.evaluate(ended, at(80))
    assert deadlines(b, "opioid_review_periodic") == [(at(100), "satisfied"), (at(140), "cancelled")]
    # a review at the instant of the start is made on opioids (courses are half-open [start, stop))
    c = api.evaluate([surgery(at(-1)), med(at(0), "opioid_ir"), review(at(0))], at(1))
    assert deadlines(c, "opioid_review_periodic") == [(at(90), "pending")]


def test_pdmp_chain(api: SpecClient) -> None:
    base = [surgery(at(-60)), monitoring(at(-31), pdmp_checked=True), med(at(0), "opioid_ir")]
    a = api.evaluate(base, at(1))
    # a check 31 days before the start neither satisfies the start deadline nor starts the chain
    assert deadlines(a, "pdmp_review") == [(at(0), "pending")]
    b = api.evaluate(base + [monitoring(at(-30), pdmp_checked=True)], at(1))
    assert deadlines(b, "pdmp_review") == [(at(0), "satisfied"), (at(60), "pending")]
    c = api.evaluate(base + [monitoring(at(-30), pdmp_checked=True), monitoring(at(30), pdmp_checked=True)], at(31))
    # the day-30 check is exactly at 60 - 30 days: satisfies; it schedules day 120
    assert deadlines(c, "pdmp_review") == [(at(0), "satisfied"), (at(60), "satisfied"), (at(120), "pending")]
    d = api.evaluate(base + [monitoring(at(5), pdmp_checked=True), med(at(50), "opioid_ir", "stopped")], at(51))
    assert deadlines(d, "pdmp_review") == [(at(0), "satisfied"), (at(95), "cancelled")]


def test_urine_drug_test_chain(api: SpecClient) -> None:
    base = [surgery(at(-60)), med(at(0), "opioid_er"), monitoring(at(10), urine_drug_test=True)]
    a = api.evaluate(base, at(11))
    assert deadlines(a, "urine_drug_test") == [(at(0), "satisfied"), (at(375), "pending")]
    b = api.evaluate(base + [monitoring(at(345), urine_drug_test=True)], at(346))
    assert deadlines(b, "urine_drug_test") == [(at(0), "satisfied"), (at(375), "satisfied"), (at(710), "pending")]
    c = api.evaluate(base + [monitoring(at(345) - SEC, urine_drug_test=True)], at(346))
    assert (at(375), "pending") in deadlines(c, "urine_drug_test")


def test_pt_start_check(api: SpecClient) -> None:
    base = [surgery(at(-1)), pt(at(0), "referred")]
    assert deadlines(api.evaluate(base, at(1)), "pt_start_check") == [(at(14), "pending")]
    assert deadlines(api.evaluate(base + [pt(at(0), "started")], at(1)), "pt_start_check") == [
        (at(14), "satisfied")
    ]  # at or after the referral
    assert deadlines(api.evaluate(base + [pt(at(3), "stopped")], at(4)), "pt_start_check") == [(at(14), "cancelled")]
    assert deadlines(api.evaluate(base + [pt(at(3), "stopped"), pt(at(3), "started")], at(4)), "pt_start_check") == [
        (at(14), "satisfied")
    ]
    # other therapy kinds do not satisfy it
    assert deadlines(api.evaluate(base + [therapy(at(2), "cbt", "started")], at(4)), "pt_start_check") == [
        (at(14), "pending")
    ]


def test_pt_follow_up(api: SpecClient) -> None:
    base = [surgery(at(-1)), pt(at(0), "started")]
    assert deadlines(api.evaluate(base + [pt(at(10), "progress")], at(11)), "pt_follow_up") == [
        (at(28), "satisfied"),
        (at(38), "pending"),
    ]
    assert deadlines(api.evaluate(base + [pt(at(10), "completed")], at(11)), "pt_follow_up") == [(at(28), "satisfied")]
    assert deadlines(api.evaluate(base + [pt(at(10), "stopped")], at(11)), "pt_follow_up") == [(at(28), "cancelled")]
    # stop and progress at one instant: the start's reminder is satisfied (same instant: satisfied wins);
    # the progress's own reminder is not cancelled by a stop at its own instant (clinical-rules §7.11)
    assert deadlines(api.evaluate(base + [pt(at(10), "stopped"), pt(at(10), "progress")], at(11)), "pt_follow_up") == [
        (at(28), "satisfied"),
        (at(38), "pending"),
    ]
    # another therapy's progress is not a PT progress
    assert deadlines(api.evaluate(base + [therapy(at(10), "cbt", "progress")], at(11)), "pt_follow_up") == [
        (at(28), "pending")
    ]


def test_first_line_review(api: SpecClient) -> None:
    a = api.evaluate(first_line_history(), at(10))
    assert deadlines(a, "first_line_review") == [(SECOND, "pending")]
    b = api.evaluate(first_line_history() + [pain(PT + 28 * DAY, 3)], at(60))
    assert deadlines(b, "first_line_review") == [(SECOND, "satisfied")]
    c = api.evaluate(first_line_history() + [surgery(at(20))], at(60))
    assert deadlines(c, "first_line_review") == [(SECOND, "cancelled")]
    # only the first active PT start of the episode
    d = api.evaluate(first_line_history() + [pt(at(10), "started")], at(12))
    assert deadlines(d, "first_line_review") == [(SECOND, "pending")]


def test_procedure_follow_up(api: SpecClient) -> None:
    # 7.8: an epidural steroid injection: 14 days, satisfied by an assessment from 7 days after it
    base = [surgery(at(-1)), procedure(at(0), "epidural_steroid_injection", image_guided=True)]
    assert deadlines(api.evaluate(base + [pain(at(7) - SEC, 4)], at(8)), "procedure_follow_up") == [(at(14), "pending")]
    assert deadlines(api.evaluate(base + [pain(at(7), 4)], at(8)), "procedure_follow_up") == [(at(14), "satisfied")]
    # a block that carries its result has no follow-up; one without it: 7 days, satisfied from 3 days
    block = [surgery(at(-1)), procedure(at(0), "medial_branch_block", relief_percent=60)]
    assert deadlines(api.evaluate(block, at(1)), "procedure_follow_up") == []
    bare = [surgery(at(-1)), procedure(at(0), "medial_branch_block")]
    assert deadlines(api.evaluate(bare + [pain(at(3) - SEC, 4)], at(4)), "procedure_follow_up") == [(at(7), "pending")]
    assert deadlines(api.evaluate(bare + [pain(at(3), 4)], at(4)), "procedure_follow_up") == [(at(7), "satisfied")]
    result = bare + [procedure(at(2), "medial_branch_block", relief_percent=80)]
    assert (at(7), "satisfied") in deadlines(api.evaluate(result, at(3)), "procedure_follow_up")
    # radiofrequency denervation: 90 days, satisfied from 45 days
    rfa = [surgery(at(-1)), procedure(at(0), "radiofrequency_denervation")]
    assert deadlines(api.evaluate(rfa + [pain(at(45) - SEC, 4)], at(46)), "procedure_follow_up") == [
        (at(90), "pending")
    ]
    assert deadlines(api.evaluate(rfa + [pain(at(45), 4)], at(46)), "procedure_follow_up") == [(at(90), "satisfied")]


def test_deadlines_every_instance_since_first_fact(api: SpecClient) -> None:
    history = [pt(at(-100), "referred"), pt(at(-95), "started"), pt(at(-60), "completed"), surgery(at(0))]
    a = api.evaluate(history, at(1))
    assert deadlines(a, "pt_start_check") == [(at(-86), "satisfied")]
    assert deadlines(a, "pt_follow_up") == [(at(-67), "satisfied")]


def test_second_line_waits_for_first_line_entry(api: SpecClient) -> None:
    # second-line criteria hold from day 43, but the MRI completing the evaluation comes only on day 60
    history = [
        surgery(at(0)),
        neuro(at(1)),
        pain(at(1), 8),
        med(at(1), "nsaid"),
        pt(at(1), "started"),
        pain(at(30), 8),
        mri(at(60)),
    ]
    a = api.evaluate(history, at(59))
    assert stage(a) == ("initial_evaluation", at(0))
    assert utc(a["next_evaluation_at"]) == at(60)
    assert stage(api.evaluate(history, at(61))) == ("second_line", at(60))


def test_pt_from_a_previous_episode_does_not_count(api: SpecClient) -> None:
    history = [
        pt(at(-10), "started"),
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 8),
        med(at(2), "nsaid"),
        pain(at(40), 8),
    ]
    a = api.evaluate(history, at(80))
    assert a["stage"] == "first_line"
    assert deadlines(a, "first_line_review") == [(at(32), "cancelled")]


def test_future_surgery_does_not_start_an_episode_yet(api: SpecClient) -> None:
    history = [surgery(at(0)), mri(at(1)), neuro(at(1)), pain(at(1), 8), surgery(at(20))]
    history += [pt(at(1), "referred"), med(at(1), "nsaid")]  # no first-line prompt comes due before day 20
    a = api.evaluate(history, at(10))
    assert stage(a) == ("first_line", at(1))
    assert deadlines(a, "initial_evaluation_overdue") == [(at(42), "satisfied")]
    assert utc(a["next_evaluation_at"]) == at(20)


def test_next_evaluation_is_earliest_change_and_ignores_deadlines_falling_due(api: SpecClient) -> None:
    # pt_start_check falling due on day 15 is no such change; pt_not_started raised at referral + 28 is
    a = api.evaluate([surgery(at(0)), pt(at(1), "referred")], at(2))
    assert utc(a["next_evaluation_at"]) == at(29)
    assert "pt_not_started" in flags(api.evaluate([surgery(at(0)), pt(at(1), "referred")], at(29)))
    assert "pt_not_started" not in flags(api.evaluate([surgery(at(0)), pt(at(1), "referred")], at(29) - SEC))
    b = api.evaluate([surgery(at(0)), med(at(1), "opioid_ir"), neuro(at(40))], at(2))
    assert utc(b["next_evaluation_at"]) == at(29)


def test_urgent_run_spans_episodes_and_restarts_after_a_clear_exam(api: SpecClient) -> None:
    # the surgery at day 10 evaluated the first red flag (7.6): the run restarts at day 12
    a = api.evaluate([surgery(at(0)), neuro(at(5), red=True), surgery(at(10)), neuro(at(12), red=True)], at(13))
    assert stage(a) == ("urgent_surgical_evaluation", at(12))
    # with no evaluation in between the run spans episodes (a new episode by a fusion elsewhere is no
    # evaluation only when it is at the same instant as the exam: not "after" it)
    a2 = api.evaluate([surgery(at(0)), neuro(at(5), red=True), surgery(at(5)), neuro(at(12), red=True)], at(13))
    assert stage(a2) == ("urgent_surgical_evaluation", at(5))
    b = api.evaluate(
        [surgery(at(0)), neuro(at(5), red=True), neuro(at(6)), neuro(at(6), red=True), neuro(at(8), red=True)], at(9)
    )
    # day 6 has both a clear and a red exam: the red one is the latest, so the run never broke
    assert stage(b) == ("urgent_surgical_evaluation", at(5))


def test_dose_change_rules(api: SpecClient) -> None:
    # a dose increase of a class with no open course is ignored even while another opioid is open
    a = api.evaluate(
        [
            surgery(at(-1)),
            med(at(0), "opioid_ir", mme_per_day=20),
            med(at(5), "opioid_er", "dose_increased", mme_per_day=60),
        ],
        at(6),
    )
    assert deadlines(a, "opioid_review_dose_change") == []
    assert "naloxone_indicated" not in flags(a)
    # an increase at the instant the course stops is ignored (half-open course)
    b = api.evaluate(
        [
            surgery(at(-1)),
            med(at(0), "opioid_ir", mme_per_day=20),
            med(at(5), "opioid_ir", "stopped"),
            med(at(5), "opioid_ir", "dose_increased"),
        ],
        at(6),
    )
    assert deadlines(b, "opioid_review_dose_change") == []
    # an increase at the instant the course starts counts
    c = api.evaluate(
        [
            surgery(at(-1)),
            med(at(0), "opioid_ir", mme_per_day=20),
            med(at(0), "opioid_ir", "dose_increased", mme_per_day=40),
        ],
        at(1),
    )
    assert deadlines(c, "opioid_review_dose_change") == [(at(28), "pending")]


def test_second_opioid_episode_plan_window(api: SpecClient) -> None:
    history = [
        surgery(at(-100)),
        monitoring(at(-5), plan=True),
        med(at(0), "opioid_ir"),
        med(at(10), "opioid_ir", "stopped"),
        med(at(50), "opioid_ir"),
    ]
    a = api.evaluate(history, at(51))
    # the day -5 plan is 55 days before the second episode: too early for it
    assert deadlines(a, "opioid_monitoring_plan") == [(at(0), "satisfied"), (at(50), "pending")]
    b = api.evaluate(history + [monitoring(at(20), plan=True)], at(51))
    assert deadlines(b, "opioid_monitoring_plan") == [(at(0), "satisfied"), (at(50), "satisfied")]
    assert deadlines(b, "opioid_review_4w") == [(at(28), "cancelled"), (at(78), "pending")]


def test_pt_start_check_only_counts_starts_and_stops_after_the_referral(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(-10)), pt(at(-5), "started"), pt(at(-2), "stopped"), pt(at(0), "referred")], at(1))
    assert deadlines(a, "pt_start_check") == [(at(14), "pending")]
    dup = api.evaluate([surgery(at(-10)), pt(at(0), "referred"), pt(at(0), "referred", off=2)], at(1))
    assert deadlines(dup, "pt_start_check") == [(at(14), "pending")]


def test_order_same_instant_ties_compare_json_text_not_numbers(api: SpecClient) -> None:
    # {"distribution":"axial","pain_nrs":10} sorts before {"distribution":"axial","pain_nrs":7} as text, so
    # the 10 is the baseline (earliest) and the 7 the latest: exactly 30 % lower, meaningful relief
    for pair in ([pain(at(1), 10), pain(at(1), 7)], [pain(at(1), 7), pain(at(1), 10)]):
        a = api.evaluate([surgery(at(-30)), mri(at(1)), neuro(at(1))] + pair, at(2))
        assert "responding_to_treatment" in flags(a)


def test_second_line_boundary_with_mixed_offsets(api: SpecClient) -> None:
    # PT start written at +05:30, the outcome assessment at -08:00, now at +09:00: only instants matter
    history = [
        surgery(at(0), -8),
        mri(at(1), 5.5),
        neuro(at(1), off=9),
        pain(at(1), 8, -8),
        med(at(2), "nsaid", off=5.5),
        pt(PT, "started", 5.5),
        pain(PT + 28 * DAY, 8, -8),
    ]
    assert api.evaluate(history, SECOND - SEC)["stage"] == "first_line"
    assert stage(api.evaluate(history, SECOND)) == ("second_line", SECOND)
    late = history[:-1] + [pain(PT + 28 * DAY - SEC, 8, -8)]
    assert api.evaluate(late, SECOND + 30 * DAY)["stage"] == "first_line"


def test_second_line_entered_when_relief_is_lost(api: SpecClient) -> None:
    # relief at PT+28 (4 vs 8); the relief is lost on day 60: second line from then
    a = api.evaluate(first_line_history() + [pain(PT + 28 * DAY, 4), pain(at(60), 8)], at(80))
    assert stage(a) == ("second_line", at(60))
    # relief stated by PT after the failing assessment keeps first line until an assessment fails again
    stated = second_line_history() + [pt(at(40), "progress", meaningful_relief=True)]
    assert api.evaluate(stated, at(50))["stage"] == "first_line"
    assert stage(api.evaluate(stated + [pain(at(55), 7)], at(56))) == ("second_line", at(55))


def test_refractory_psychological_therapy_kinds_and_interventional_kinds(api: SpecClient) -> None:
    def history(psych_kind: str, proc_kind: str) -> list[dict[str, Any]]:
        return second_line_history() + [therapy(at(5), psych_kind, "started"), procedure(at(50), proc_kind)]

    for kind in ("cbt", "biofeedback", "relaxation_training", "supportive_psychotherapy"):
        assert api.evaluate(history(kind, "radiofrequency_denervation"), at(90))["stage"] == "refractory"
    for kind in ("psychological_evaluation", "multidisciplinary_rehab", "tens"):
        assert api.evaluate(history(kind, "radiofrequency_denervation"), at(90))["stage"] == "second_line"
    assert api.evaluate(history("cbt", "scs_trial"), at(90))["stage"] == "refractory"
    for kind in ("endoscopic_decompression", "repeat_surgery", "scs_implant"):
        assert api.evaluate(history("cbt", kind), at(90))["stage"] == "second_line"


def test_refractory_stays_after_improvement_and_new_surgery_restarts(api: SpecClient) -> None:
    history = refractory_history(cbt_day=10, proc_day=50) + [pain(at(80), 2)]
    a = api.evaluate(history, at(90))
    assert stage(a) == ("refractory", at(66))
    assert "responding_to_treatment" in flags(a)
    assert stage(api.evaluate(history + [surgery(at(85))], at(90))) == ("initial_evaluation", at(85))


def test_passive_pt_start_satisfies_pt_start_check_but_not_first_line_review(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(-1)), pt(at(0), "referred"), pt(at(2), "started", modality="passive")], at(3))
    assert deadlines(a, "pt_start_check") == [(at(14), "satisfied")]
    assert deadlines(a, "first_line_review") == []
    assert deadlines(a, "pt_follow_up") == [(at(30), "pending")]


def test_urgent_referral_of_a_red_exam_followed_by_red_exam_then_surgery(api: SpecClient) -> None:
    a = api.evaluate([surgery(at(0)), neuro(at(2), red=True), neuro(at(3), cauda=True), surgery(at(4))], at(5))
    # one run of red flags, one referral, satisfied by the surgery; the surgery also ends the urgent stage
    assert deadlines(a, "urgent_surgical_referral") == [(at(2), "satisfied")]
    assert stage(a) == ("initial_evaluation", at(4))


def test_current_mme_after_stop_and_start_at_one_instant_is_the_restart_dose(api: SpecClient) -> None:
    # the course continues (no new 4-week review), and its latest mme_per_day is the restart's
    # (clinical-rules §7: a documented new dose is never ignored)
    up = [
        surgery(at(0)),
        med(at(1), "opioid_ir", mme_per_day=20),
        med(at(10), "opioid_ir", "stopped"),
        med(at(10), "opioid_ir", mme_per_day=60),
    ]
    a = api.evaluate(up, at(11))
    assert "naloxone_indicated" in flags(a)
    assert deadlines(a, "opioid_review_4w") == [(at(29), "pending")]
    down = [
        surgery(at(0)),
        med(at(1), "opioid_ir", mme_per_day=60),
        med(at(10), "opioid_ir", "stopped"),
        med(at(10), "opioid_ir", mme_per_day=20),
    ]
    assert "naloxone_indicated" not in flags(api.evaluate(down, at(11)))
    # without an MME on the restart the course keeps its last known dose
    keep = [
        surgery(at(0)),
        med(at(1), "opioid_ir", mme_per_day=60),
        med(at(10), "opioid_ir", "stopped"),
        med(at(10), "opioid_ir"),
    ]
    assert "naloxone_indicated" in flags(api.evaluate(keep, at(11)))


def test_relief_stated_before_the_baseline_is_ended_by_it(api: SpecClient) -> None:
    # the baseline assessment is later than the statement and is not 30 % below itself: no relief claimed
    a = api.evaluate(
        [
            surgery(at(-30)),
            therapy(at(0.5), "cbt", "progress", meaningful_relief=True),
            mri(at(1)),
            neuro(at(1)),
            pain(at(1), 8),
        ],
        at(2),
    )
    assert "responding_to_treatment" not in flags(a)
    # a statement at or after the baseline stands
    b = api.evaluate(
        [
            surgery(at(-30)),
            mri(at(1)),
            neuro(at(1)),
            pain(at(1), 8),
            therapy(at(1), "cbt", "progress", meaningful_relief=True),
        ],
        at(2),
    )
    assert "responding_to_treatment" in flags(b)


@pytest.mark.parametrize(("review_says", "therapy_says", "relief"), [(False, True, True), (True, False, False)])
def test_order_same_instant_statements_by_type_name(
    api: SpecClient, review_says: bool, therapy_says: bool, relief: bool
) -> None:
    # at one instant "opioid_review" < "therapy": the therapy update is the latest statement
    history = [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 8),
        therapy(at(3), "cbt", "progress", meaningful_relief=therapy_says),
        review(at(3), relief=review_says),
    ]
    assert ("responding_to_treatment" in flags(api.evaluate(history, at(4)))) is relief


def test_second_line_non_opioid_started_late_sets_the_entry(api: SpecClient) -> None:
    history = [
        surgery(at(0)),
        mri(at(1)),
        neuro(at(1)),
        pain(at(1), 8),
        pt(PT, "started"),
        pain(PT + 28 * DAY, 8),
        med(at(50), "snri"),
    ]
    assert stage(api.evaluate(history, at(80))) == ("second_line", at(50))
    # a non-opioid dose increase is no opioid dose change
    a = api.evaluate(history + [med(at(55), "snri", "dose_increased")], at(80))
    assert deadlines(a, "opioid_review_dose_change") == []


def test_next_evaluation_for_a_stage_change_underneath_urgency(api: SpecClient) -> None:
    # urgent all along; second line underneath changes the stage-dependent flags on day 45
    history = second_line_history() + [neuro(at(20), red=True)]
    a = api.evaluate(history, at(35))
    assert stage(a) == ("urgent_surgical_evaluation", at(20))
    assert utc(a["next_evaluation_at"]) == SECOND
    b = api.evaluate(history, SECOND)
    assert stage(b) == ("urgent_surgical_evaluation", at(20))
    assert "psychological_therapy_recommended" in flags(b)
    assert deadlines(b, "first_line_review") == [(SECOND, "satisfied")]


def test_episode_facts_are_those_strictly_after_the_surgery(api: SpecClient) -> None:
    # spec §0: stage, baseline and timing are "derived from the facts after" the surgery, and "after" is
    # strict; facts at the surgery's very instant belong to the episode before it (clinical-rules §7.29)
    same = api.evaluate([surgery(at(0)), mri(at(0)), neuro(at(0)), pain(at(0), 5)], at(20))
    assert stage(same) == ("initial_evaluation", at(0))
    # the episode holds nothing but its surgery: no initial-evaluation deadline (2026.2 §3)
    assert deadlines(same, "initial_evaluation_overdue") == []
    # a pre-operative score at the surgery instant is not the post-operative baseline: 6 vs 9 is no relief
    base = api.evaluate([surgery(at(0)), pain(at(0), 9), mri(at(1)), neuro(at(1)), pain(at(1), 6)], at(2))
    assert "responding_to_treatment" not in flags(base)
    assert stage(base) == ("first_line", at(1))


def test_facts_at_a_new_surgery_instant_close_the_previous_episode(api: SpecClient) -> None:
    # the evaluation of episode 1 is completed at the instant of surgery 2: satisfied (same instant as the
    # cancellation: satisfied wins); surgery 2's own reminder is pending
    a = api.evaluate([surgery(at(0)), mri(at(1)), neuro(at(1)), pain(at(20), 5), surgery(at(20))], at(21))
    # surgery 2's episode holds nothing but its surgery: no reminder of its own yet (2026.2)
    assert deadlines(a, "initial_evaluation_overdue") == [(at(42), "satisfied")]
    assert stage(a) == ("initial_evaluation", at(20))


def test_pdmp_deadlines_of_two_opioid_episodes_merge_on_the_same_due(api: SpecClient) -> None:
    # episode 1 [0, 50): the day -20 check satisfies its start and schedules day 70, cancelled at day 50;
    # episode 2 starts on day 70: its start deadline collides with that one (pending over cancelled)
    history = [
        surgery(at(-100)),
        monitoring(at(-20), pdmp_checked=True),
        med(at(0), "opioid_ir"),
        med(at(50), "opioid_ir", "stopped"),
        med(at(70), "opioid_ir"),
    ]
    a = api.evaluate(history, at(71))
    assert deadlines(a, "pdmp_review") == [(at(0), "satisfied"), (at(70), "pending")]
    # a check on day 60: too late for episode 1 (ended first), in time for episode 2 (satisfied over
    # cancelled), and the start of episode 2's chain
    b = api.evaluate(history + [monitoring(at(60), pdmp_checked=True)], at(71))
    assert deadlines(b, "pdmp_review") == [(at(0), "satisfied"), (at(70), "satisfied"), (at(150), "pending")]
    assert deadlines(b, "opioid_monitoring_plan") == [(at(0), "cancelled"), (at(70), "pending")]


def test_now_written_with_an_offset_is_the_same_instant(api: SpecClient) -> None:
    history = [surgery(at(0)), mri(at(1)), neuro(at(1)), pain(at(5), 7, -8)]
    response = api.client.post(
        "/v1/pathway:evaluate",
        headers=api.headers,
        json={"updates": history, "now": at(5).astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()},
    )
    assert response.status_code == 200, response.text
    a = response.json()
    assert stage(a) == ("first_line", at(5))  # the fact written at -08:00 is exactly at now
    assert a["evaluated_at"] == "2026-01-10T09:00:00Z"
    b = api.evaluate(history, at(5) - SEC)
    assert b["next_evaluation_at"] == "2026-01-10T09:00:00Z"


def test_deadlines_without_a_cancelling_event_are_never_cancelled(api: SpecClient) -> None:
    # procedure_follow_up has no "cancelled when": a new surgery or an opioid stop leaves it pending
    a = api.evaluate(
        [
            surgery(at(-10)),
            procedure(at(0), "epidural_steroid_injection", approach="caudal"),
            surgery(at(5)),
            pt(at(6), "stopped"),
        ],
        at(20),
    )
    assert deadlines(a, "procedure_follow_up") == [(at(14), "pending")]
    # the follow-up assessment may come in the new episode
    b = api.evaluate(
        [
            surgery(at(-10)),
            procedure(at(0), "epidural_steroid_injection", approach="caudal"),
            surgery(at(5)),
            pain(at(8), 5),
        ],
        at(20),
    )
    assert deadlines(b, "procedure_follow_up") == [(at(14), "satisfied")]


def test_deadline_citations_of_the_spec_table(api: SpecClient) -> None:
    history = [
        surgery(at(-1)),
        med(at(0), "opioid_ir", mme_per_day=20),
        med(at(5), "opioid_ir", "dose_increased", mme_per_day=40),
        review(at(6)),
    ]
    a = api.evaluate(history, at(7))
    cited = {d["kind"]: d for d in a["deadlines"]}
    assert "G3" in cited["opioid_review_4w"]["citation"]
    assert cited["opioid_review_4w"]["text"].startswith("4-week opioid reassessment due")
    for kind in ("opioid_review_dose_change", "opioid_review_periodic", "pdmp_review", "urine_drug_test"):
        assert "CDC22" in cited[kind]["citation"], kind
    assert all(d["text"] and "\n" not in d["text"] for d in a["deadlines"])


def test_current_mme_of_two_starts_at_one_instant_is_the_latest_stated(api: SpecClient) -> None:
    # one opioid_ir course; at one instant {"…","mme_per_day":20} sorts before {"…","mme_per_day":60}, so 60 is
    # the course's latest mme_per_day (clinical-rules §7.30), whatever the arrival order
    for pair in (
        [med(at(1), "opioid_ir", mme_per_day=60), med(at(1), "opioid_ir", mme_per_day=20)],
        [med(at(1), "opioid_ir", mme_per_day=20), med(at(1), "opioid_ir", mme_per_day=60)],
    ):
        a = api.evaluate([surgery(at(0))] + pair, at(2))
        assert "naloxone_indicated" in flags(a)
        assert deadlines(a, "opioid_review_4w") == [(at(29), "pending")]
    # a start without MME at the same instant does not hide a stated one
    b = api.evaluate([surgery(at(0)), med(at(1), "opioid_ir"), med(at(1), "opioid_ir", mme_per_day=60)], at(2))
    assert "naloxone_indicated" in flags(b)


def test_backdated_surgery_and_exam(api: SpecClient) -> None:
    # a surgery posted late, dated day 2, starts a new episode there: the day-1 evaluation belongs to the
    # episode before it
    a = api.evaluate(first_line_history() + [surgery(at(2))], at(10))
    assert stage(a) == ("initial_evaluation", at(2))
    # episode 2's first other fact is the PT start at day 3: due at surgery + 28 + 14 = day 44
    assert deadlines(a, "initial_evaluation_overdue") == [(at(42), "satisfied"), (at(44), "pending")]
    # a red-flag exam posted late but dated before the latest clear exam does not make the patient urgent,
    # but its referral stays open until a surgical evaluation (7.6)
    b = api.evaluate(first_line_history() + [neuro(at(5)), neuro(at(4), red=True)], at(10))
    assert stage(b) == ("first_line", at(1))
    assert deadlines(b, "urgent_surgical_referral") == [(at(4), "pending")]
    assert "surgical_evaluation_pending" in flags(b)
