"""Spec §3 (deadlines), one row per case: (facts, now) -> a deadline (kind, due_at, status)."""

from __future__ import annotations

import pytest
from pathway_facts import (
    assess,
    at,
    deadlines_of,
    evaluation_complete,
    failed_first_line,
    imaging,
    med,
    monitoring,
    neuro,
    pain,
    procedure,
    review,
    surgery,
    surgical_evaluation,
    therapy,
)

PT = "physical_therapy"
CASES = [
    # urgent_surgical_referral
    (
        "urgent_surgical_referral pending at the exam",
        [surgery(0), neuro(5, True)],
        6,
        "urgent_surgical_referral",
        5,
        "pending",
    ),
    (
        "7.6-referral-stays-pending-after-a-clear-exam",
        [surgery(0), neuro(5, True), neuro(7)],
        8,
        "urgent_surgical_referral",
        5,
        "pending",
    ),
    (
        "7.6-referral-satisfied-by-a-surgical-evaluation",
        [surgery(0), neuro(5, True), neuro(7), surgical_evaluation(9, "no_surgery_indicated")],
        10,
        "urgent_surgical_referral",
        5,
        "satisfied",
    ),
    (
        "7.6-referral-not-satisfied-by-an-evaluation-at-the-same-instant",
        [surgery(0), neuro(5, True), surgical_evaluation(5, "declined")],
        6,
        "urgent_surgical_referral",
        5,
        "pending",
    ),
    (
        "7.6-red-flags-without-evaluation-between-are-one-referral",
        [surgery(0), neuro(5, True), neuro(6), neuro(8, True)],
        9,
        "urgent_surgical_referral",
        5,
        "pending",
    ),
    (
        "7.6-red-flag-after-an-evaluation-is-a-new-referral",
        [surgery(0), neuro(5, True), surgical_evaluation(6, "no_surgery_indicated"), neuro(8, True)],
        9,
        "urgent_surgical_referral",
        8,
        "pending",
    ),
    (
        "urgent_surgical_referral satisfied by repeat surgery",
        [surgery(0), neuro(5, True), procedure(6, "repeat_surgery")],
        8,
        "urgent_surgical_referral",
        5,
        "satisfied",
    ),
    (
        "urgent_surgical_referral satisfied by a surgery update",
        [surgery(0), neuro(5, True), surgery(6)],
        8,
        "urgent_surgical_referral",
        5,
        "satisfied",
    ),
    (
        "urgent_surgical_referral not satisfied by a clear exam at the same instant",
        [surgery(0), neuro(5, True), neuro(5)],
        8,
        "urgent_surgical_referral",
        5,
        "pending",
    ),
    # initial_evaluation_overdue
    (
        "7.5-initial-evaluation-overdue-surgery-plus-28-plus-14",
        [surgery(0), pain(3, 8)],
        4,
        "initial_evaluation_overdue",
        42,
        "pending",
    ),
    (
        "7.5-initial-evaluation-overdue-late-presentation-first-fact-plus-14",
        [surgery(0), pain(400, 8)],
        401,
        "initial_evaluation_overdue",
        414,
        "pending",
    ),
    (
        "initial_evaluation_overdue satisfied (late completion still satisfies)",
        [surgery(0), imaging(50), neuro(1), pain(2, 8)],
        51,
        "initial_evaluation_overdue",
        42,
        "satisfied",
    ),
    (
        "initial_evaluation_overdue cancelled by a new episode",
        [surgery(0), pain(3, 8), surgery(10)],
        11,
        "initial_evaluation_overdue",
        42,
        "cancelled",
    ),
    (
        "initial_evaluation_overdue of the new episode",
        [surgery(0), surgery(10), pain(12, 8)],
        13,
        "initial_evaluation_overdue",
        52,
        "pending",
    ),
    (
        "7.5-initial-evaluation-overdue-no-surgery-earliest-fact-plus-14",
        [pain(3, 8)],
        4,
        "initial_evaluation_overdue",
        17,
        "pending",
    ),
    # opioid_monitoring_plan
    (
        "opioid_monitoring_plan pending at the opioid episode start",
        [med(5, "opioid_ir")],
        6,
        "opioid_monitoring_plan",
        5,
        "pending",
    ),
    (
        "opioid_monitoring_plan satisfied by a plan 30 days before",
        [monitoring(-25, plan=True), med(5, "opioid_ir")],
        6,
        "opioid_monitoring_plan",
        5,
        "satisfied",
    ),
    (
        "opioid_monitoring_plan not satisfied by a plan 30 days + 1 s before",
        [monitoring(-25 - 1 / 86400, plan=True), med(5, "opioid_ir")],
        6,
        "opioid_monitoring_plan",
        5,
        "pending",
    ),
    (
        "opioid_monitoring_plan cancelled when the opioid episode ends first",
        [med(5, "opioid_ir"), med(9, "opioid_ir", "stopped"), monitoring(10, plan=True)],
        11,
        "opioid_monitoring_plan",
        5,
        "cancelled",
    ),
    # opioid_review_4w
    ("opioid_review_4w pending", [med(5, "opioid_ir")], 6, "opioid_review_4w", 33, "pending"),
    (
        "opioid_review_4w satisfied by a review",
        [med(5, "opioid_ir"), review(30, True)],
        31,
        "opioid_review_4w",
        33,
        "satisfied",
    ),
    (
        "opioid_review_4w cancelled when the course stopped first",
        [med(5, "opioid_ir"), med(20, "opioid_ir", "stopped")],
        21,
        "opioid_review_4w",
        33,
        "cancelled",
    ),
    (
        "opioid_review_4w per course: ER started later",
        [med(5, "opioid_ir"), med(10, "opioid_er")],
        11,
        "opioid_review_4w",
        38,
        "pending",
    ),
    (
        "7.2-4w-review-satisfied-by-a-review-21-days-after-start",
        [med(5, "opioid_ir"), review(26, True)],
        27,
        "opioid_review_4w",
        33,
        "satisfied",
    ),
    (
        "7.2-4w-review-not-satisfied-by-a-review-20-days-after-start",
        [med(5, "opioid_ir"), review(25, True)],
        27,
        "opioid_review_4w",
        33,
        "pending",
    ),
    (
        "7.2-4w-review-not-satisfied-by-a-review-21-days-minus-1-s-after-start",
        [med(5, "opioid_ir"), review(26 - 1 / 86400, True)],
        27,
        "opioid_review_4w",
        33,
        "pending",
    ),
    (
        "7.2-early-review-at-2-weeks-then-course-stops-cancelled",
        [med(5, "opioid_ir"), review(19, True), med(22, "opioid_ir", "stopped")],
        23,
        "opioid_review_4w",
        33,
        "cancelled",
    ),
    # opioid_taper_follow_up
    (
        "7.3-taper-follow-up-after-a-no-relief-review-day-7",
        [med(5, "opioid_ir"), review(12, False)],
        13,
        "opioid_taper_follow_up",
        40,
        "pending",
    ),
    (
        "7.3-taper-follow-up-after-a-review-whose-pain-is-at-baseline",
        [surgery(-40), pain(-5, 7), med(5, "opioid_ir"), review(12, True, pain_nrs=7)],
        13,
        "opioid_taper_follow_up",
        40,
        "pending",
    ),
    (
        "7.3-taper-follow-up-satisfied-by-the-next-review",
        [med(5, "opioid_ir"), review(12, False), review(30, False)],
        31,
        "opioid_taper_follow_up",
        40,
        "satisfied",
    ),
    (
        "7.3-taper-follow-up-cancelled-when-opioids-stop",
        [med(5, "opioid_ir"), review(12, False), med(20, "opioid_ir", "stopped")],
        21,
        "opioid_taper_follow_up",
        40,
        "cancelled",
    ),
    # opioid_stop_follow_up
    (
        "7.3-stop-follow-up-after-an-episode-of-28-days",
        [med(5, "opioid_ir"), med(33, "opioid_ir", "stopped")],
        34,
        "opioid_stop_follow_up",
        47,
        "pending",
    ),
    (
        "7.3-stop-follow-up-satisfied-by-a-pain-assessment-after-the-end",
        [med(5, "opioid_ir"), med(33, "opioid_ir", "stopped"), pain(40, 5)],
        41,
        "opioid_stop_follow_up",
        47,
        "satisfied",
    ),
    (
        "7.3-stop-follow-up-satisfied-by-an-opioid-review-after-the-end",
        [med(5, "opioid_ir"), med(33, "opioid_ir", "stopped"), review(35, False)],
        41,
        "opioid_stop_follow_up",
        47,
        "satisfied",
    ),
    (
        "7.3-stop-follow-up-cancelled-by-a-new-opioid-episode",
        [med(5, "opioid_ir"), med(33, "opioid_ir", "stopped"), med(36, "opioid_er")],
        37,
        "opioid_stop_follow_up",
        47,
        "cancelled",
    ),
    # opioid_review_dose_change
    (
        "opioid_review_dose_change pending",
        [med(5, "opioid_ir", mme=20), med(10, "opioid_ir", "dose_increased", mme=40)],
        11,
        "opioid_review_dose_change",
        38,
        "pending",
    ),
    (
        "opioid_review_dose_change satisfied",
        [med(5, "opioid_ir"), med(10, "opioid_ir", "dose_increased"), review(20, True)],
        21,
        "opioid_review_dose_change",
        38,
        "satisfied",
    ),
    (
        "opioid_review_dose_change cancelled when the opioid episode ends",
        [med(5, "opioid_ir"), med(10, "opioid_ir", "dose_increased"), med(15, "opioid_ir", "stopped")],
        21,
        "opioid_review_dose_change",
        38,
        "cancelled",
    ),
    # opioid_review_periodic
    (
        "opioid_review_periodic pending 90 days after a review on opioids",
        [med(5, "opioid_ir"), review(30, True)],
        31,
        "opioid_review_periodic",
        120,
        "pending",
    ),
    (
        "opioid_review_periodic satisfied by the next review",
        [med(5, "opioid_ir"), review(30, True), review(100, True)],
        101,
        "opioid_review_periodic",
        120,
        "satisfied",
    ),
    (
        "opioid_review_periodic cancelled when the opioid episode ends",
        [med(5, "opioid_ir"), review(30, True), med(40, "opioid_ir", "stopped")],
        41,
        "opioid_review_periodic",
        120,
        "cancelled",
    ),
    # pdmp_review
    ("pdmp_review at the opioid episode start", [med(5, "opioid_ir")], 6, "pdmp_review", 5, "pending"),
    (
        "pdmp_review satisfied by a check from due - 30 days",
        [monitoring(-25, pdmp_checked=True), med(5, "opioid_ir")],
        6,
        "pdmp_review",
        5,
        "satisfied",
    ),
    (
        "pdmp_review next one 90 days after the check",
        [med(5, "opioid_ir"), monitoring(6, pdmp_checked=True)],
        7,
        "pdmp_review",
        96,
        "pending",
    ),
    (
        "pdmp_review cancelled when the opioid episode ends",
        [med(5, "opioid_ir"), monitoring(6, pdmp_checked=True), med(20, "opioid_ir", "stopped")],
        21,
        "pdmp_review",
        96,
        "cancelled",
    ),
    # urine_drug_test
    (
        "urine_drug_test at the opioid episode start",
        [med(5, "opioid_er")],
        6,
        "urine_drug_test",
        5,
        "pending",
    ),
    (
        "urine_drug_test next one 365 days after the test",
        [med(5, "opioid_er"), monitoring(5, urine_drug_test=True)],
        6,
        "urine_drug_test",
        370,
        "pending",
    ),
    (
        "urine_drug_test satisfied from due - 30 days",
        [med(5, "opioid_er"), monitoring(5, urine_drug_test=True), monitoring(340, urine_drug_test=True)],
        341,
        "urine_drug_test",
        370,
        "satisfied",
    ),
    (
        "urine_drug_test cancelled when the opioid episode ends",
        [med(5, "opioid_er"), monitoring(5, urine_drug_test=True), med(100, "opioid_er", "stopped")],
        101,
        "urine_drug_test",
        370,
        "cancelled",
    ),
    # pt_start_check
    ("pt_start_check pending", [therapy(5, PT, "referred")], 6, "pt_start_check", 19, "pending"),
    (
        "pt_start_check satisfied by PT started at the referral",
        [therapy(5, PT, "referred"), therapy(5, PT, "started")],
        6,
        "pt_start_check",
        19,
        "satisfied",
    ),
    (
        "pt_start_check cancelled by PT stopped first",
        [therapy(5, PT, "referred"), therapy(8, PT, "stopped"), therapy(9, PT, "started")],
        10,
        "pt_start_check",
        19,
        "cancelled",
    ),
    # pt_follow_up
    ("pt_follow_up pending after start", [therapy(5, PT, "started")], 6, "pt_follow_up", 33, "pending"),
    (
        "pt_follow_up satisfied by progress",
        [therapy(5, PT, "started"), therapy(20, PT, "progress")],
        21,
        "pt_follow_up",
        33,
        "satisfied",
    ),
    (
        "pt_follow_up chained from progress",
        [therapy(5, PT, "started"), therapy(20, PT, "progress")],
        21,
        "pt_follow_up",
        48,
        "pending",
    ),
    (
        "pt_follow_up cancelled by PT stopped first",
        [therapy(5, PT, "started"), therapy(10, PT, "stopped")],
        11,
        "pt_follow_up",
        33,
        "cancelled",
    ),
    # first_line_review
    (
        "first_line_review pending at PT start + 42 days",
        [*evaluation_complete(), therapy(3, PT), med(3, "nsaid")],
        10,
        "first_line_review",
        45,
        "pending",
    ),
    (
        "first_line_review satisfied by an assessment at PT + 28 days",
        failed_first_line(),
        32,
        "first_line_review",
        45,
        "satisfied",
    ),
    (
        "first_line_review not satisfied by an assessment at PT + 28 days - 1 s",
        failed_first_line(outcome_day=31 - 1 / 86400),
        32,
        "first_line_review",
        45,
        "pending",
    ),
    (
        "first_line_review cancelled by a new episode",
        [*evaluation_complete(), therapy(3, PT), surgery(20)],
        21,
        "first_line_review",
        45,
        "cancelled",
    ),
    # procedure_follow_up
    (
        "procedure_follow_up pending",
        [procedure(5, "epidural_steroid_injection")],
        6,
        "procedure_follow_up",
        19,
        "pending",
    ),
    (
        "7.8-esi-follow-up-satisfied-by-an-assessment-7-days-after",
        [procedure(5, "epidural_steroid_injection"), pain(12, 5)],
        13,
        "procedure_follow_up",
        19,
        "satisfied",
    ),
    (
        "7.8-esi-follow-up-not-satisfied-7-days-minus-1-s-after",
        [procedure(5, "epidural_steroid_injection"), pain(12 - 1 / 86400, 5)],
        13,
        "procedure_follow_up",
        19,
        "pending",
    ),
    (
        "7.8-rfa-follow-up-90-days-satisfied-from-45-days",
        [procedure(5, "radiofrequency_denervation"), pain(50, 5)],
        51,
        "procedure_follow_up",
        95,
        "satisfied",
    ),
    (
        "7.8-rfa-follow-up-not-satisfied-45-days-minus-1-s",
        [procedure(5, "radiofrequency_denervation"), pain(50 - 1 / 86400, 5)],
        51,
        "procedure_follow_up",
        95,
        "pending",
    ),
    ("7.8-scs-implant-follow-up-90-days", [procedure(5, "scs_implant")], 6, "procedure_follow_up", 95, "pending"),
    (
        "7.8-endoscopic-decompression-follow-up-42-days-satisfied-from-21",
        [procedure(5, "endoscopic_decompression"), pain(26, 5)],
        27,
        "procedure_follow_up",
        47,
        "satisfied",
    ),
    (
        "7.8-repeat-surgery-follow-up-42-days-not-satisfied-at-20-days",
        [procedure(5, "repeat_surgery"), pain(25, 5)],
        27,
        "procedure_follow_up",
        47,
        "pending",
    ),
    (
        "7.8-block-without-result-7-days-satisfied-from-3-days",
        [procedure(5, "medial_branch_block"), pain(8, 5)],
        9,
        "procedure_follow_up",
        12,
        "satisfied",
    ),
    (
        "7.8-block-without-result-not-satisfied-3-days-minus-1-s",
        [procedure(5, "medial_branch_block"), pain(8 - 1 / 86400, 5)],
        9,
        "procedure_follow_up",
        12,
        "pending",
    ),
    (
        "7.8-trial-without-result-satisfied-by-its-result",
        [procedure(5, "scs_trial"), procedure(6, "scs_trial", relief=60)],
        7,
        "procedure_follow_up",
        12,
        "satisfied",
    ),
    # merge and resolution order
    (
        "merge: pending over satisfied on the same (kind, due_at)",
        [med(5, "opioid_ir"), med(5, "opioid_er"), med(20, "opioid_er", "stopped")],
        21,
        "opioid_review_4w",
        33,
        "pending",
    ),
    (
        "resolution: satisfied and cancelled at the same instant -> satisfied",
        [med(5, "opioid_ir"), review(26, False), med(26, "opioid_ir", "stopped")],
        27,
        "opioid_review_4w",
        33,
        "satisfied",
    ),
]


@pytest.mark.parametrize(
    ("facts", "day", "kind", "due_day", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_deadline_row(facts, day, kind, due_day, status):
    assert (at(due_day), status) in deadlines_of(assess(facts, day), kind)


def test_deadlines_are_sorted_and_unique_per_kind_and_due():
    facts = [med(5, "opioid_ir"), med(5, "opioid_er"), monitoring(6, pdmp_checked=True), review(30, True)]
    deadlines = assess(facts, 40).deadlines
    keys = [(d.due_at, d.kind) for d in deadlines]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_dose_change_without_course_creates_no_deadline():
    facts = [med(5, "opioid_ir", "dose_increased"), med(6, "opioid_ir", "stopped")]
    kinds = {d.kind for d in assess(facts, 10).deadlines}
    assert kinds == {"initial_evaluation_overdue"}  # the episode (from the earliest fact) only


def test_7_8_block_or_trial_with_its_result_has_no_follow_up():
    facts = [procedure(5, "medial_branch_block", relief=60), procedure(6, "scs_trial", relief=40)]
    assert deadlines_of(assess(facts, 7), "procedure_follow_up") == []


def test_7_3_no_stop_follow_up_after_an_episode_under_28_days():
    facts = [med(5, "opioid_ir"), med(33 - 1 / 86400, "opioid_ir", "stopped")]
    assert deadlines_of(assess(facts, 40), "opioid_stop_follow_up") == []


def test_7_3_no_taper_follow_up_for_a_review_under_7_days_into_the_episode():
    facts = [med(5, "opioid_ir"), review(12 - 1 / 86400, False)]
    assert deadlines_of(assess(facts, 13), "opioid_taper_follow_up") == []


def test_7_5_no_initial_evaluation_deadline_while_the_episode_holds_only_its_surgery():
    assert deadlines_of(assess([surgery(0)], 50), "initial_evaluation_overdue") == []


def test_7_5_initial_evaluation_boundary_first_fact_at_surgery_plus_28_days():
    on_time = deadlines_of(assess([surgery(0), pain(28, 8)], 29), "initial_evaluation_overdue")
    later = deadlines_of(assess([surgery(0), pain(28, 8, seconds=1)], 29), "initial_evaluation_overdue")
    assert on_time == [(at(42), "pending")]
    assert later == [(at(42, seconds=1), "pending")]


def test_deadline_carries_text_and_citation():
    deadline = next(d for d in assess([med(5, "opioid_ir")], 6).deadlines if d.kind == "opioid_review_4w")
    assert deadline.text.startswith("4-week opioid reassessment due")
    assert deadline.citation == "G3"
    assert deadline.fact_ids
