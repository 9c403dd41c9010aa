"""Property tests over generated valid histories (Hypothesis): determinism, order independence, future
facts, one-way escalation, exact UTC due dates across DST, and no exceptions on any valid combination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.pathway.rules import Fact, evaluate

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ZONES = [
    UTC,
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
    ZoneInfo("America/New_York"),
    ZoneInfo("Europe/Berlin"),
]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DUE_OFFSETS_DAYS = {0, 7, 14, 28, 42, 90, 365}

booleans = st.booleans()
nrs = st.integers(0, 10)
peg = st.one_of(st.integers(0, 10), st.sampled_from([3.3, 6.7, 7.1, 0.0]))
percent = st.integers(0, 100)


def _fixed(required, optional=None):
    return st.fixed_dictionaries(required, optional=optional or {})


DATA = {
    "surgery": _fixed(
        {
            "procedure": st.sampled_from(
                ["laminectomy", "foraminotomy", "laminectomy_foraminotomy", "discectomy", "fusion", "other"]
            )
        },
        {"levels": st.lists(st.sampled_from(["L3-L4", "L4-L5", "L5-S1"]), max_size=2)},
    ),
    "pain_assessment": _fixed(
        {"pain_nrs": nrs, "distribution": st.sampled_from(["axial", "radicular", "mixed"])},
        {"function_peg": peg, "facet_suspected": booleans},
    ),
    "neuro_exam": _fixed(
        {"progressive_deficit": st.booleans().map(lambda b: b and False) | booleans},
        {"cauda_equina_signs": booleans},
    ),
    "imaging": _fixed(
        {
            "modality": st.sampled_from(["mri", "ct", "xray"]),
            "findings": st.lists(
                st.sampled_from(
                    [
                        "recurrent_disc_herniation",
                        "inadequate_decompression",
                        "instability",
                        "adjacent_segment_disease",
                        "nerve_entrapment_in_scar",
                        "no_surgical_target",
                    ]
                ),
                max_size=2,
            ),
        },
        {"indication": st.sampled_from(["", "new deficit", None])},
    ),
    "medication": _fixed(
        {
            "drug_class": st.sampled_from(
                [
                    "nsaid",
                    "gabapentinoid",
                    "sodium_channel_anticonvulsant",
                    "tca",
                    "snri",
                    "opioid_ir",
                    "opioid_er",
                    "benzodiazepine",
                    "other",
                ]
            ),
            "action": st.sampled_from(["started", "started", "dose_increased", "dose_decreased", "stopped"]),
        },
        {"mme_per_day": st.sampled_from([0, 20, 30, 49.5, 50, 90, None])},
    ),
    "opioid_monitoring": _fixed(
        {"plan_documented": booleans},
        {"pdmp_checked": booleans, "urine_drug_test": booleans, "naloxone_offered": booleans},
    ),
    "opioid_review": _fixed({"meaningful_relief": booleans}, {"pain_nrs": nrs, "tolerance_or_hyperalgesia": booleans}),
    "therapy": _fixed(
        {
            "kind": st.sampled_from(
                [
                    "physical_therapy",
                    "physical_therapy",
                    "cbt",
                    "biofeedback",
                    "relaxation_training",
                    "supportive_psychotherapy",
                    "psychological_evaluation",
                    "multidisciplinary_rehab",
                    "tens",
                ]
            ),
            "status": st.sampled_from(["referred", "started", "progress", "completed", "stopped"]),
        },
        {"modality": st.sampled_from(["active", "passive"]), "meaningful_relief": booleans},
    ),
    "procedure": _fixed(
        {
            "kind": st.sampled_from(
                [
                    "epidural_steroid_injection",
                    "medial_branch_block",
                    "radiofrequency_denervation",
                    "scs_trial",
                    "scs_implant",
                    "endoscopic_decompression",
                    "repeat_surgery",
                ]
            )
        },
        {
            "approach": st.sampled_from(["transforaminal", "interlaminar", "caudal"]),
            "image_guided": booleans,
            "relief_percent": st.one_of(percent, st.none()),
        },
    ),
    "psychosocial": _fixed(
        {
            "factors": st.lists(
                st.sampled_from(
                    [
                        "high_motivation",
                        "family_support",
                        "good_function",
                        "moderate_psychological_factors",
                        "divorced",
                        "unemployed",
                        "diffuse_complaints",
                        "predominant_psychological_factors",
                        "secondary_gain",
                        "substance_use_disorder",
                        "prior_overdose",
                    ]
                ),
                max_size=3,
            )
        },
        {"symptom_months_before_surgery": st.sampled_from([0, 6, 11.5, 12, 40])},
    ),
    "surgical_evaluation": _fixed(
        {"outcome": st.sampled_from(["surgery_planned", "no_surgery_indicated", "declined"])},
    ),
}

# Coarse instants (whole days, a few hours) make same-instant ties common; zones put offsets across DST.
instants = st.builds(
    lambda days, hours, zone: (T0 + timedelta(days=days, hours=hours)).astimezone(zone),
    st.integers(-30, 330),
    st.sampled_from([0, 0, 6, 13.5]),
    st.sampled_from(ZONES),
)


@st.composite
def raw_fact(draw):
    type_ = draw(st.sampled_from(sorted(DATA)))
    return type_, draw(instants), draw(DATA[type_])


@st.composite
def histories(draw, max_size=40):
    raws = draw(st.lists(raw_fact(), max_size=max_size))
    return [Fact(f"f{index}", type_, moment, data) for index, (type_, moment, data) in enumerate(raws)]


def _skeleton_fact(index, type_, day, data):
    return type_, (T0 + timedelta(days=day)).astimezone(ZONES[index % len(ZONES)]), data


@st.composite
def clinical_histories(draw):
    """A plausible escalating pathway (evaluation, PT + NSAID, outcome, CBT, ESI, opioids) with jittered
    days, plus random extra facts: stage transitions, relief and opioid rules get exercised."""

    def day(low: int, high: int) -> int:
        return draw(st.integers(low, high))

    skeleton = [
        ("surgery", day(-5, 0), {"procedure": "laminectomy"}),
        ("imaging", day(0, 20), {"modality": "mri", "findings": ["no_surgical_target"]}),
        ("neuro_exam", day(0, 20), {"progressive_deficit": False}),
        ("pain_assessment", day(0, 20), {"pain_nrs": draw(st.integers(5, 10)), "distribution": "radicular"}),
        ("therapy", day(0, 30), {"kind": "physical_therapy", "status": "started"}),
        ("medication", day(-10, 30), {"drug_class": "nsaid", "action": "started"}),
        ("pain_assessment", day(30, 90), {"pain_nrs": draw(nrs), "distribution": "mixed"}),
        ("therapy", day(20, 90), {"kind": "cbt", "status": "started"}),
        ("procedure", day(40, 120), {"kind": "epidural_steroid_injection", "image_guided": True}),
        ("medication", day(10, 120), {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 40}),
        ("opioid_review", day(30, 150), {"meaningful_relief": draw(booleans)}),
        # 2026.2 thresholds: a baseline from surgery + 28 days, a PT referral (14/28-day prompts), an early
        # opioid review (7 and 21 days), the opioid stop (stop follow-up), a red flag and its evaluation
        ("pain_assessment", day(20, 40), {"pain_nrs": draw(nrs), "distribution": "radicular"}),
        ("therapy", day(0, 40), {"kind": "physical_therapy", "status": "referred"}),
        ("opioid_review", day(15, 40), {"meaningful_relief": draw(booleans), "pain_nrs": draw(nrs)}),
        ("medication", day(40, 200), {"drug_class": "opioid_ir", "action": "stopped"}),
        ("neuro_exam", day(0, 100), {"progressive_deficit": True}),
        ("surgical_evaluation", day(0, 120), {"outcome": "no_surgery_indicated"}),
    ]
    mostly = st.sampled_from([True, True, True, False])
    keep = draw(st.lists(mostly, min_size=len(skeleton), max_size=len(skeleton)))
    raws = [
        _skeleton_fact(i, *item) for i, (item, kept) in enumerate(zip(skeleton, keep, strict=True)) if kept or i < 4
    ]
    raws += draw(st.lists(raw_fact().filter(lambda raw: raw[0] != "surgery"), max_size=8))
    return [Fact(f"f{index}", type_, moment, data) for index, (type_, moment, data) in enumerate(raws)]


any_history = st.one_of(histories(), clinical_histories())
nows = st.builds(
    lambda days, seconds: T0 + timedelta(days=days, seconds=seconds),
    st.integers(-10, 400),
    st.sampled_from([0, -1, 1, 3600]),
)


@SETTINGS
@given(any_history, nows)
def test_same_input_same_output(facts, now):
    assert evaluate(facts, now).to_dict() == evaluate(list(facts), now).to_dict()


@SETTINGS
@given(any_history, nows, st.randoms(use_true_random=False))
def test_any_permutation_gives_the_same_assessment(facts, now, random):
    shuffled = list(facts)
    random.shuffle(shuffled)
    assert evaluate(shuffled, now).to_dict() == evaluate(facts, now).to_dict()


def _without(result: dict, *keys: str) -> dict:
    return {k: v for k, v in result.items() if k not in keys}


@SETTINGS
@given(any_history, nows)
def test_facts_after_now_change_only_count_and_next_evaluation(facts, now):
    past = [f for f in facts if f.occurred_at <= now]
    with_future = evaluate(facts, now).to_dict()
    without_future = evaluate(past, now).to_dict()
    assert _without(with_future, "updates_evaluated", "next_evaluation_at") == _without(
        without_future, "updates_evaluated", "next_evaluation_at"
    )
    assert with_future["updates_evaluated"] == len(facts)
    future = [f.occurred_at for f in facts if f.occurred_at > now]
    if future and with_future["next_evaluation_at"] is not None:
        assert evaluate(facts, now).next_evaluation_at <= min(future)


STAGE_RANK = {"initial_evaluation": 0, "first_line": 1, "second_line": 2, "refractory": 3}


@SETTINGS
@given(any_history, nows, st.integers(1, 200 * 86400))
def test_escalation_is_one_way_within_an_episode(facts, now, step_seconds):
    later = now + timedelta(seconds=step_seconds)
    if any(f.type == "surgery" and now < f.occurred_at <= later for f in facts):
        return  # a new episode starts over
    earlier = evaluate(facts, now)
    if any(f.occurred_at <= now for f in facts):  # the episode exists already
        assert STAGE_RANK[evaluate(facts, later).pathway_stage] >= STAGE_RANK[earlier.pathway_stage]


@SETTINGS
@given(any_history, nows)
def test_every_due_at_is_an_exact_utc_offset_from_one_of_its_facts(facts, now):
    instants_by_id = {f.id: f.occurred_at.astimezone(UTC) for f in facts}
    for deadline in evaluate(facts, now).deadlines:
        assert deadline.due_at.utcoffset() == timedelta(0)
        offsets = {deadline.due_at - instants_by_id[i] for i in deadline.fact_ids}
        assert offsets & {timedelta(hours=24 * days) for days in DUE_OFFSETS_DAYS}, deadline


def _visible(result):
    return (
        result.stage,
        result.stage_since,
        [f.code for f in result.flags],
        [(d.kind, d.due_at, d.status) for d in result.deadlines],
    )


@SETTINGS
@given(st.one_of(histories(max_size=25), clinical_histories()), nows)
def test_nothing_changes_before_next_evaluation_at(facts, now):
    result = evaluate(facts, now)
    if result.next_evaluation_at is None:
        probe = now + timedelta(days=800)
        if all(f.occurred_at <= now for f in facts):
            assert _visible(evaluate(facts, probe)) == _visible(result)
        return
    assert result.next_evaluation_at > now
    just_before = result.next_evaluation_at - timedelta(microseconds=1)
    assert _visible(evaluate(facts, just_before)) == _visible(result)
    halfway = now + (result.next_evaluation_at - now) / 2
    assert _visible(evaluate(facts, halfway)) == _visible(result)


@SETTINGS
@given(st.one_of(histories(max_size=25), clinical_histories()), nows)
def test_something_changes_at_next_evaluation_at(facts, now):
    """Exactness from the other side: at next_evaluation_at a future fact takes effect or the visible
    result changes (the 7/21/28-day, 14/28-day prompt and 365-day thresholds all feed it)."""
    result = evaluate(facts, now)
    moment = result.next_evaluation_at
    if moment is None:
        return
    if any(f.occurred_at == moment for f in facts):
        return  # a future-dated fact comes into effect then
    assert _visible(evaluate(facts, moment)) != _visible(result)
