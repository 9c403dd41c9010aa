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
        "urgent_surgical_referral satisfied by a later clear exam",
        [surgery(0), neuro(5, True), neuro(7)],
        8,
        "urgent_surgical_referral",
        5,
        "satisfied",
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
    ("initial_evaluation_overdue pending", [surgery(0)], 3, "initial_evaluation_overdue", 14, "pending"),
    (
        "initial_evaluation_overdue satisfied (late completion still satisfies)",
        [surgery(0), imaging(20), neuro(1), pain(2, 8)],
        21,
        "initial_evaluation_overdue",
        14,
        "satisfied",
    ),
    (
        "initial_evaluation_overdue cancelled by a new episode",
        [surgery(0), surgery(10)],
        11,
        "initial_evaluation_overdue",
        14,
        "cancelled",
    ),
    (
        "initial_evaluation_overdue of the new episode",
        [surgery(0), surgery(10)],
        11,
        "initial_evaluation_overdue",
        24,
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
        [procedure(5, "medial_branch_block", relief=60)],
        6,
        "procedure_follow_up",
        19,
        "pending",
    ),
    (
        "procedure_follow_up satisfied by an assessment 7 days after",
        [procedure(5, "medial_branch_block"), pain(12, 5)],
        13,
        "procedure_follow_up",
        19,
        "satisfied",
    ),
    (
        "procedure_follow_up not satisfied by an assessment 7 days - 1 s after",
        [procedure(5, "medial_branch_block"), pain(12 - 1 / 86400, 5)],
        13,
        "procedure_follow_up",
        19,
        "pending",
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
        [med(5, "opioid_ir"), review(20, False), med(20, "opioid_ir", "stopped")],
        21,
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


def test_deadline_carries_text_and_citation():
    deadline = next(d for d in assess([med(5, "opioid_ir")], 6).deadlines if d.kind == "opioid_review_4w")
    assert deadline.text.startswith("4-week opioid reassessment due")
    assert deadline.citation == "G3"
    assert deadline.fact_ids
