"""Spec §2 (stage), one row per case: (facts, now) -> (stage, stage_since). Days count from T0 (UTC)."""

from __future__ import annotations

import pytest
from pathway_facts import (
    assess,
    at,
    evaluation_complete,
    failed_first_line,
    flag_codes,
    imaging,
    med,
    neuro,
    pain,
    procedure,
    refractory_history,
    surgery,
    therapy,
)

CASES = [
    # §2.2 initial_evaluation
    ("2.2 no facts: initial evaluation", [], 5, ("initial_evaluation", None)),
    ("2.2 surgery only: since the episode start", [surgery(0)], 5, ("initial_evaluation", 0)),
    (
        "2.2 x-ray is not MRI/CT",
        [surgery(0), imaging(1, "xray"), neuro(1), pain(2, 8)],
        5,
        ("initial_evaluation", 0),
    ),
    ("2.2 neuro exam missing", [surgery(0), imaging(1), pain(2, 8)], 5, ("initial_evaluation", 0)),
    ("2.2 pain assessment missing", [surgery(0), imaging(1), neuro(1)], 5, ("initial_evaluation", 0)),
    (
        "2.2 no surgery: episode starts at the earliest fact",
        [pain(3, 8), neuro(4)],
        5,
        ("initial_evaluation", 3),
    ),
    # §2.3 first_line
    ("2.3 complete: since the last part", evaluation_complete(), 5, ("first_line", 2)),
    ("2.3 CT counts as imaging", [surgery(0), imaging(9, "ct"), neuro(1), pain(2, 8)], 10, ("first_line", 9)),
    (
        "2.3 later MRI completes the evaluation",
        [surgery(0), imaging(1, "xray"), neuro(1), pain(2, 8), imaging(20)],
        21,
        ("first_line", 20),
    ),
    (
        "2.3 facts before the surgery do not count",
        [imaging(-5), neuro(-5), pain(-5, 8), surgery(0)],
        5,
        ("initial_evaluation", 0),
    ),
    # §2.4 second_line
    ("2.4 exactly PT start + 42 days", failed_first_line(), 45, ("second_line", 45)),
    ("2.4 PT start + 42 days - 1 s", failed_first_line(), 45 - 1 / 86400, ("first_line", 2)),
    (
        "2.4 outcome at PT + 28 days exactly counts",
        failed_first_line(outcome_day=31),
        50,
        ("second_line", 45),
    ),
    (
        "2.4 outcome at PT + 28 days - 1 s does not",
        failed_first_line(outcome_day=31 - 1 / 86400),
        50,
        ("first_line", 2),
    ),
    (
        "2.4 late outcome assessment: entry at the assessment",
        failed_first_line(outcome_day=60),
        61,
        ("second_line", 60),
    ),
    (
        "2.4 exactly 30 % relief (10 -> 7) is meaningful: stays first line",
        [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid"), pain(28, 10), pain(31, 7)],
        50,
        ("first_line", 2),
    ),
    (
        "2.4 28.6 % (7 -> 5) is not meaningful: second line",
        [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid"), pain(28, 7), pain(31, 5)],
        50,
        ("second_line", 45),
    ),
    (
        "2.4 PEG 30 % lower too (10 -> 7.0): relief",
        [
            surgery(0),
            imaging(1),
            neuro(1),
            pain(2, 5),
            therapy(3, "physical_therapy"),
            med(3, "nsaid"),
            pain(28, 10, peg=10),
            pain(31, 7, peg=7.0),
        ],
        50,
        ("first_line", 2),
    ),
    (
        "2.4 PEG only 29 % lower (10 -> 7.1): no relief",
        [
            surgery(0),
            imaging(1),
            neuro(1),
            pain(2, 5),
            therapy(3, "physical_therapy"),
            med(3, "nsaid"),
            pain(28, 10, peg=10),
            pain(31, 7, peg=7.1),
        ],
        50,
        ("second_line", 45),
    ),
    (
        "7.13 baseline pain 0 without PEG: no test applies, no failure, stays first line",
        [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid"), pain(28, 0), pain(31, 4)],
        50,
        ("first_line", 2),
    ),
    (
        "7.1 a day-2 score of 9 is no baseline: 6 at day 31 fails against itself, second line",
        [*evaluation_complete(pain_nrs=9), therapy(3, "physical_therapy"), med(3, "nsaid"), pain(31, 6)],
        50,
        ("second_line", 45),
    ),
    (
        "7.13 baseline pain 0 with PEG: the PEG test alone fails (10 -> 8), second line",
        [
            *evaluation_complete(),
            therapy(3, "physical_therapy"),
            med(3, "nsaid"),
            pain(28, 0, peg=10),
            pain(31, 2, peg=8),
        ],
        50,
        ("second_line", 45),
    ),
    (
        "7.13 baseline pain 0 with PEG: the PEG test alone passes (10 -> 7), first line",
        [
            *evaluation_complete(),
            therapy(3, "physical_therapy"),
            med(3, "nsaid"),
            pain(28, 0, peg=10),
            pain(31, 2, peg=7),
        ],
        50,
        ("first_line", 2),
    ),
    (
        "2.4 no outcome assessment: stays first line",
        [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "nsaid")],
        60,
        ("first_line", 2),
    ),
    (
        "2.4 passive PT is not an adequate trial",
        [
            *evaluation_complete(),
            therapy(3, "physical_therapy", modality="passive"),
            med(3, "nsaid"),
            pain(31, 8),
        ],
        60,
        ("first_line", 2),
    ),
    (
        "2.4 no non-opioid analgesic: stays first line",
        [*evaluation_complete(), therapy(3, "physical_therapy"), med(3, "opioid_ir"), pain(31, 8)],
        60,
        ("first_line", 2),
    ),
    (
        "2.4 non-opioid course open at the episode start counts",
        [med(-30, "gabapentinoid"), *evaluation_complete(), therapy(3, "physical_therapy"), pain(31, 8)],
        60,
        ("second_line", 45),
    ),
    (
        "2.4 non-opioid stopped before the episode does not count",
        [
            med(-30, "gabapentinoid"),
            med(-10, "gabapentinoid", "stopped"),
            *evaluation_complete(),
            therapy(3, "physical_therapy"),
            pain(31, 8),
        ],
        60,
        ("first_line", 2),
    ),
    (
        "2.4 non-opioid started late: entry at its start",
        [*evaluation_complete(), therapy(3, "physical_therapy"), pain(31, 8), med(50, "tca")],
        60,
        ("second_line", 50),
    ),
    (
        "2.4 therapy states meaningful relief: stays first line",
        [*failed_first_line(), therapy(32, "physical_therapy", "progress", relief=True)],
        60,
        ("first_line", 2),
    ),
    (
        "2.4 stated relief, then a failing assessment: second line from it",
        [*failed_first_line(), therapy(40, "physical_therapy", "progress", relief=True), pain(50, 8)],
        60,
        ("second_line", 50),
    ),
    (
        "2.4 escalation is one way: relief afterwards keeps second line",
        [*failed_first_line(), pain(60, 3)],
        70,
        ("second_line", 45),
    ),
    # §2.5 refractory
    ("2.5 exactly CBT start + 56 days", refractory_history(), 106, ("refractory", 106)),
    ("2.5 CBT start + 56 days - 1 s", refractory_history(), 106 - 1 / 86400, ("second_line", 45)),
    (
        "2.5 relief before the threshold: stays second line",
        refractory_history(relief=True),
        120,
        ("second_line", 45),
    ),
    (
        "2.5 no interventional procedure: stays second line",
        [*failed_first_line(), therapy(50, "cbt")],
        120,
        ("second_line", 45),
    ),
    (
        "2.5 repeat surgery is not an interventional procedure",
        [*failed_first_line(), therapy(50, "cbt"), procedure(60, "repeat_surgery")],
        120,
        ("second_line", 45),
    ),
    (
        "2.5 psychological therapy may start before second line",
        [*failed_first_line(), therapy(5, "biofeedback"), procedure(20, "medial_branch_block", relief=10)],
        62,
        ("refractory", 61),
    ),
    (
        "2.5 psychological evaluation is not psychological therapy",
        [*failed_first_line(), therapy(5, "psychological_evaluation"), procedure(20, "scs_trial")],
        90,
        ("second_line", 45),
    ),
    # §2.1 urgent_surgical_evaluation
    (
        "2.1 progressive deficit: urgent since the exam",
        [*failed_first_line(), neuro(50, True)],
        51,
        (URGENT := "urgent_surgical_evaluation", 50),
    ),
    ("2.1 cauda equina signs: urgent", [*evaluation_complete(), neuro(10, cauda=True)], 11, (URGENT, 10)),
    (
        "2.1 run of red-flag exams: since the first of the run",
        [*evaluation_complete(), neuro(10, True), neuro(12, cauda=True)],
        13,
        (URGENT, 10),
    ),
    (
        "2.1 clear exam breaks the run",
        [*evaluation_complete(), neuro(8, True), neuro(9), neuro(12, True)],
        13,
        (URGENT, 12),
    ),
    (
        "2.1 later clear exam returns to the stage that evolved underneath",
        [*failed_first_line(), neuro(40, True), neuro(50)],
        51,
        ("second_line", 45),
    ),
    (
        "2.1 same-instant exams: the red-flag one counts as latest",
        [*evaluation_complete(), neuro(10, True, id_="red"), neuro(10, False, id_="clear")],
        11,
        (URGENT, 10),
    ),
    (
        "7.6 a surgery after a red flag evaluates it: the new episode starts",
        [*evaluation_complete(), neuro(10, True), surgery(20)],
        21,
        ("initial_evaluation", 20),
    ),
    # §0 episodes
    (
        "0 new surgery starts a new episode",
        [*failed_first_line(), surgery(60)],
        61,
        ("initial_evaluation", 60),
    ),
    (
        "0 new episode evaluates its own facts",
        [*failed_first_line(), *evaluation_complete(100)],
        103,
        ("first_line", 102),
    ),
]


@pytest.mark.parametrize(("facts", "day", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_stage_row(facts, day, expected):
    result = assess(facts, day)
    stage, since_day = expected
    assert result.stage == stage
    assert result.stage_since == (None if since_day is None else at(since_day))


def test_escalation_adds_responding_to_treatment_without_moving_back():
    result = assess([*failed_first_line(), pain(60, 3)], 70)
    assert result.stage == "second_line"
    assert "responding_to_treatment" in flag_codes(result)


def test_urgent_keeps_pathway_stage_underneath():
    result = assess([*failed_first_line(), neuro(50, True)], 51)
    assert (result.pathway_stage, result.pathway_stage_since) == ("second_line", at(45))
