"""Spec §5 (policy profiles) and the parameters: MBB thresholds per profile, overrides, digest."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from pathway_facts import (
    assess,
    at,
    deadlines_of,
    evaluation_complete,
    failed_first_line,
    flag_codes,
    pain,
    procedure,
    surgery,
    therapy,
)

from services.pathway.rules import PROFILES, Params, params_for

MBB = "medial_branch_block"
ASRA = params_for("asra-2020")
LCD = params_for("us-medicare-lcd")
CASES = [
    ("asra-2020: one block 49 %", ASRA, [procedure(5, MBB, relief=49)], False),
    ("asra-2020: one block 50 %", ASRA, [procedure(5, MBB, relief=50)], True),
    ("asra-2020: one block 80 %", ASRA, [procedure(5, MBB, relief=80)], True),
    ("us-medicare-lcd: one block 80 %", LCD, [procedure(5, MBB, relief=80)], False),
    (
        "us-medicare-lcd: two blocks 50 %",
        LCD,
        [procedure(5, MBB, relief=50), procedure(30, MBB, relief=50)],
        False,
    ),
    (
        "us-medicare-lcd: two blocks 49 %",
        LCD,
        [procedure(5, MBB, relief=49), procedure(30, MBB, relief=49)],
        False,
    ),
    (
        "us-medicare-lcd: two blocks 80 %, 14 days apart",
        LCD,
        [procedure(5, MBB, relief=80), procedure(19, MBB, relief=80)],
        True,
    ),
    (
        "us-medicare-lcd: two blocks 80 %, 14 days - 1 s apart",
        LCD,
        [procedure(5, MBB, relief=80), procedure(19, MBB, relief=80, seconds=-1)],
        False,
    ),
    (
        "us-medicare-lcd: 80 % and 79 %",
        LCD,
        [procedure(5, MBB, relief=80), procedure(30, MBB, relief=79)],
        False,
    ),
    (
        "us-medicare-lcd: close pair, third block later",
        LCD,
        [procedure(5, MBB, relief=90), procedure(10, MBB, relief=90), procedure(20, MBB, relief=85)],
        True,
    ),
    ("asra-2020: block without relief_percent", ASRA, [procedure(5, MBB)], False),
]


@pytest.mark.parametrize(("params", "facts", "positive"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mbb_profile_row(params, facts, positive):
    assert ("mbb_positive" in flag_codes(assess(facts, 40, params=params))) is positive


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_named_in_profile_dependent_recommendation(profile):
    result = assess(
        [procedure(5, MBB, relief=95), procedure(25, MBB, relief=95), therapy(6, "tens")],
        40,
        params=params_for(profile),
    )
    texts = {r.code: r.text for r in result.recommendations}
    assert profile in texts["mbb_positive"]
    assert profile not in texts["tens_caution"] and "NICE NG59" in texts["tens_caution"]  # 7.11
    assert result.profile == profile and result.to_dict()["profile"] == profile


def test_defaults_match_the_spec():
    params = params_for()
    assert params == Params()
    assert (params.first_line_trial_days, params.pt_assessment_after_days, params.psych_therapy_days) == (
        42,
        28,
        56,
    )
    assert params.relief_fraction == Fraction(3, 10)
    assert (params.pdmp_interval_days, params.udt_interval_days, params.naloxone_mme_threshold) == (
        90,
        365,
        50,
    )


@pytest.mark.parametrize(
    ("profile", "overrides"),
    [
        ("nice-2016", None),
        ("asra-2020", {"no_such_param": 1}),
        ("asra-2020", {"first_line_trial_days": -1}),
        ("asra-2020", {"first_line_trial_days": "42"}),
        ("asra-2020", {"relief_fraction": 1.5}),
        ("asra-2020", {"relief_fraction": 0}),
        ("asra-2020", {"mbb_relief_percent": 101}),
        ("asra-2020", {"profile": "us-medicare-lcd"}),
        ("asra-2020", {"tolerance_days": True}),
        ("asra-2020", {"first_line_trial_days": 1.5}),
        ("asra-2020", {"mbb_blocks_required": 0}),
    ],
    ids=lambda v: repr(v),
)
def test_params_for_rejects(profile, overrides):
    with pytest.raises(ValueError):
        params_for(profile, overrides)


@pytest.mark.parametrize("fraction", [0.3, "0.3", "3/10", Decimal("0.30"), Fraction(3, 10)])
def test_relief_fraction_is_exact_whatever_its_spelling(fraction):
    params = params_for(overrides={"relief_fraction": fraction})
    assert params.relief_fraction == Fraction(3, 10) and params.digest() == params_for().digest()


def test_override_changes_digest_and_rule():
    shorter = params_for(overrides={"first_line_trial_days": 30})
    assert shorter.digest() != params_for().digest()
    assert assess(failed_first_line(), 33, params=shorter).stage == "second_line"
    assert assess(failed_first_line(), 33).stage == "first_line"


def test_relief_fraction_override_moves_the_boundary():
    facts = [
        *evaluation_complete(),
        therapy(3, "physical_therapy"),
        procedure(3, "epidural_steroid_injection", image_guided=True),
        pain(28, 10),
        pain(31, 7),
    ]
    stricter = params_for(overrides={"relief_fraction": "0.5"})
    assert "responding_to_treatment" in flag_codes(assess(facts, 32))
    assert "responding_to_treatment" not in flag_codes(assess(facts, 32, params=stricter))


def test_digest_is_sha256_of_sorted_compact_json():
    import hashlib
    import json

    params = params_for("us-medicare-lcd")
    text = json.dumps(params.as_json_dict(), sort_keys=True, separators=(",", ":"))
    assert params.digest() == hashlib.sha256(text.encode()).hexdigest()
    assert params.as_json_dict()["profile"] == "us-medicare-lcd"
    assert params.digest() != params_for().digest()


NEW_2026_2_DEFAULTS = {
    "baseline_delay_days": 28,
    "opioid_benefit_days": 7,
    "opioid_review_min_days": 21,
    "first_line_prompt_days": 14,
    "pt_not_started_days": 28,
    "rehab_after_surgery_days": 365,
    "worsening_points": 2,
    "esi_follow_up_days": 14,
    "rfa_follow_up_days": 90,
    "scs_implant_follow_up_days": 90,
    "endoscopic_follow_up_days": 42,
    "repeat_surgery_follow_up_days": 42,
    "block_follow_up_days": 7,
    "taper_follow_up_days": 28,
    "stop_follow_up_min_days": 28,
    "stop_follow_up_days": 14,
}


def test_2026_2_defaults_and_every_new_parameter_is_an_override_in_the_digest():
    params = params_for()
    assert {name: getattr(params, name) for name in NEW_2026_2_DEFAULTS} == NEW_2026_2_DEFAULTS
    assert params.worsening_fraction == Fraction(3, 10)
    for name, default in NEW_2026_2_DEFAULTS.items():
        changed = params_for(overrides={name: default + 1})
        assert getattr(changed, name) == default + 1 and changed.digest() != params.digest(), name
    assert params_for(overrides={"worsening_fraction": "1/2"}).worsening_fraction == Fraction(1, 2)


@pytest.mark.parametrize("name", ["procedure_follow_up_days", "procedure_assessment_after_days"])
def test_2026_1_procedure_parameters_are_gone(name):
    with pytest.raises(ValueError):
        params_for(overrides={name: 14})


@pytest.mark.parametrize("bad", [0, 1.5, "x", True])
def test_worsening_fraction_is_validated(bad):
    with pytest.raises(ValueError):
        params_for(overrides={"worsening_fraction": bad})


def test_baseline_delay_override_moves_the_baseline():
    facts = [surgery(0), pain(20, 10), pain(40, 7)]
    assert "responding_to_treatment" not in flag_codes(assess(facts, 41))  # day 20 is acute: baseline is day 40
    shorter = params_for(overrides={"baseline_delay_days": 14})
    assert "responding_to_treatment" in flag_codes(assess(facts, 41, params=shorter))  # 10 -> 7


def test_procedure_delay_override_moves_due_and_window():
    params = params_for(overrides={"esi_follow_up_days": 21})
    facts = [procedure(0, "epidural_steroid_injection"), pain(10, 5)]
    assert deadlines_of(assess(facts, 11, params=params), "procedure_follow_up") == [(at(21), "satisfied")]
    assert deadlines_of(assess(facts[:1] + [pain(10 - 1 / 86400, 5)], 11, params=params), "procedure_follow_up") == [
        (at(21), "pending")
    ]
