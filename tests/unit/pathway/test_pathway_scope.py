"""Spec §0 and §1 derived terms: episodes, courses carried across episodes, same-instant rules, backdating."""

from __future__ import annotations

import pytest
from pathway_facts import (
    assess,
    at,
    deadlines_of,
    evaluation_complete,
    failed_first_line,
    flag_codes,
    med,
    pain,
    review,
    surgery,
    therapy,
)

CASES = [
    (
        "0 courses carry across episodes: still on opioids after a new surgery",
        [med(-10, "opioid_ir", mme=60), surgery(0)],
        20,
        {"opioid_tolerance_risk", "naloxone_indicated"},
        set(),
    ),
    (
        "0 relief does not carry into a new episode",
        [*evaluation_complete(pain_nrs=10), pain(10, 3), surgery(20)],
        21,
        set(),
        {"responding_to_treatment"},
    ),
    (
        "1 stop and start at the same instant continue the course (28 days continuous)",
        [med(0, "opioid_ir"), med(10, "opioid_ir", "stopped"), med(10, "opioid_ir")],
        28,
        {"opioid_tolerance_risk"},
        set(),
    ),
    (
        "1 start while open changes nothing (course from the first start)",
        [med(0, "opioid_er"), med(20, "opioid_er")],
        28,
        {"opioid_tolerance_risk"},
        set(),
    ),
    (
        "1 start and stop at one instant while closed: the course opens (safer reading)",
        [med(5, "benzodiazepine"), med(5, "benzodiazepine", "stopped"), med(6, "opioid_ir")],
        7,
        {"opioid_benzodiazepine_coprescription"},
        set(),
    ),
    (
        "1 stopped course is closed at its stop instant",
        [med(0, "opioid_ir"), med(28, "opioid_ir", "stopped")],
        28,
        set(),
        {"opioid_tolerance_risk", "opioid_monitoring_plan_missing"},
    ),
    (
        "1 current MME: latest dose of each open course",
        [
            med(0, "opioid_ir", mme=20),
            med(1, "opioid_ir", "dose_increased", mme=35),
            med(2, "opioid_er", mme=15),
        ],
        3,
        {"naloxone_indicated"},
        set(),
    ),
    (
        "1 current MME unknown: no naloxone flag",
        [med(0, "opioid_ir"), med(2, "opioid_er")],
        3,
        set(),
        {"naloxone_indicated"},
    ),
    (
        "1 stated relief from a therapy update counts as meaningful relief",
        [*evaluation_complete(), therapy(10, "cbt", "progress", relief=True)],
        11,
        {"responding_to_treatment"},
        set(),
    ),
    (
        "1 a pain assessment at the same instant as the stated relief is not later",
        [*evaluation_complete(), review(10, True), pain(10, 9)],
        11,
        {"responding_to_treatment"},
        set(),
    ),
]


@pytest.mark.parametrize(("facts", "day", "shown", "hidden"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_scope_row(facts, day, shown, hidden):
    codes = flag_codes(assess(facts, day))
    assert shown <= codes and not hidden & codes


def test_backdated_relief_changes_the_earlier_conclusion():
    facts = failed_first_line()
    assert assess(facts, 50).stage == "second_line"
    late_posted = pain(40, 3, "radicular")  # happened on day 40, posted after day 50
    assert assess([*facts, late_posted], 50).stage == "first_line"


def test_each_episode_has_its_own_initial_evaluation_deadline():
    result = assess([surgery(0), pain(3, 8), surgery(30), pain(31, 8)], 32)
    expected = [(at(42), "cancelled"), (at(72), "pending")]  # surgery + 28 + 14; dropped by the new episode
    assert deadlines_of(result, "initial_evaluation_overdue") == expected


def test_facts_before_the_first_surgery_form_their_own_episode():
    result = assess([pain(-20, 8), surgery(0)], 1)
    # the pre-surgery episode: earliest fact + 14 days; the new one holds only its surgery: no deadline (7.5)
    assert deadlines_of(result, "initial_evaluation_overdue") == [(at(-6), "cancelled")]
    assert result.stage == "initial_evaluation" and result.stage_since == at(0)
