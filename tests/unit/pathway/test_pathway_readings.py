"""The readings chosen where the 2026.2 spec is ambiguous (docs/clinical-rules.md §8), one pin each. Each
test names the reading; the safer reading is the one that keeps a prompt or does not claim relief."""

from __future__ import annotations

from pathway_facts import (
    assess,
    at,
    deadlines_of,
    evaluation_complete,
    failed_first_line,
    flag_codes,
    med,
    pain,
    procedure,
    psychosocial,
    review,
    surgery,
    therapy,
)

PT = "physical_therapy"


def test_r1_statement_with_its_own_score_but_no_baseline_yet_is_no_relief():
    facts = [*evaluation_complete(), review(10, True, pain_nrs=2)]
    assert "responding_to_treatment" not in flag_codes(assess(facts, 11))
    without_score = [*evaluation_complete(), review(10, True)]
    assert "responding_to_treatment" in flag_codes(assess(without_score, 11))  # the clinician's judgement


def test_r2_review_score_is_read_against_the_episode_baseline_even_if_recorded_later():
    facts = [surgery(0), med(5, "nsaid"), med(5, "opioid_ir"), review(14, True, pain_nrs=7), pain(30, 6)]
    result = assess(facts, 31)
    assert "opioid_no_meaningful_relief" in flag_codes(result)
    assert deadlines_of(result, "opioid_taper_follow_up") == [(at(42), "pending")]


def test_r3_the_baseline_can_be_the_outcome_assessment_and_fails_against_itself():
    result = assess(failed_first_line(outcome_nrs=8), 46)  # the day-2 score is acute; day 31 is the baseline
    assert result.stage == "second_line"
    assert result.pain.baseline is not None and result.pain.baseline.fact_id == "outcome"


def test_r8_a_repeat_rfa_needs_new_positive_blocks():
    facts = [
        surgery(0),
        procedure(3, "medial_branch_block", relief=80),
        procedure(5, "radiofrequency_denervation", id_="rfa1"),
        procedure(200, "radiofrequency_denervation", id_="rfa2"),
    ]
    hit = next(f for f in assess(facts, 201).flags if f.code == "rfa_without_positive_blocks")
    assert hit.fact_ids == ("rfa2",)


def test_r8_blocks_after_an_rfa_count_again():
    facts = [
        procedure(3, "medial_branch_block", relief=80),
        procedure(5, "radiofrequency_denervation"),
        procedure(100, "medial_branch_block", relief=70),
    ]
    assert "mbb_positive" in flag_codes(assess(facts, 101))


def test_r10_overdose_factors_are_not_g4_prognostic_factors():
    codes = flag_codes(assess([psychosocial(1, ["substance_use_disorder", "prior_overdose"])], 2))
    assert not codes & {"poor_prognostic_factors", "good_prognostic_factors"}


def test_r11_any_pt_referral_or_start_answers_active_pt_not_started():
    facts = [*evaluation_complete(), therapy(5, PT, "started", modality="passive")]
    codes = flag_codes(assess(facts, 20))
    assert "active_pt_not_started" not in codes and "passive_pt_only" in codes


def test_r11_first_line_prompts_count_from_the_first_line_entry_in_later_stages_too():
    facts = [*failed_first_line()]  # PT and NSAID present: neither prompt
    assert not flag_codes(assess(facts, 60)) & {"active_pt_not_started", "non_opioid_not_started"}


def test_r13_pain_worsening_from_a_baseline_of_zero_needs_two_points():
    assert "pain_worsening" in flag_codes(assess([surgery(0), pain(28, 0), pain(30, 2)], 31))
    assert "pain_worsening" not in flag_codes(assess([surgery(0), pain(28, 0), pain(30, 1)], 31))


def test_r14_no_rehab_timer_in_an_episode_without_a_recorded_surgery():
    facts = [
        pain(0, 8, "radicular"),
        *evaluation_complete(1)[1:3],
        therapy(3, PT),
        med(3, "nsaid"),
        pain(31, 8, "radicular"),
        therapy(40, "cbt"),
    ]
    result = assess(facts, 500)
    assert result.stage == "second_line"
    assert "multidisciplinary_rehab_recommended" not in flag_codes(result)


def test_r16_no_pain_assessment_before_the_trial_is_an_unmet_criterion():
    facts = [therapy(1, "psychological_evaluation", "completed"), procedure(5, "scs_trial", relief=80)]
    result = assess(facts, 6)
    rec = next(r for r in result.recommendations if r.code == "scs_implant_criteria_unmet")
    assert "no pain assessment before the trial" in rec.text and "psychological" not in rec.text


def test_r20_a_no_relief_review_after_a_no_relief_review_satisfies_one_and_starts_the_next():
    facts = [med(1, "opioid_ir"), review(10, False), review(30, False)]
    assert deadlines_of(assess(facts, 31), "opioid_taper_follow_up") == [
        (at(38), "satisfied"),
        (at(58), "pending"),
    ]


def test_r24_change_percent_is_the_pain_change_against_the_baseline():
    result = assess([surgery(0), pain(28, 9), pain(40, 6)], 41)
    assert result.pain.change_percent == -33.3
    assert assess([surgery(0), pain(28, 0), pain(40, 6)], 41).pain.change_percent is None


def test_r26_reviews_of_an_earlier_opioid_episode_do_not_count():
    facts = [med(1, "opioid_ir"), review(10, False), med(12, "opioid_ir", "stopped"), med(20, "opioid_ir")]
    assert "opioid_no_meaningful_relief" not in flag_codes(assess(facts, 21))
