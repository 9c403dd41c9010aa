"""Care flags (pathway-spec §4). Stage-dependent flags read the current episode and the pathway stage
(also while urgent); the others read all facts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .catalog import STAGE_ORDER
from .context import Context
from .model import DAY_US
from .stage import PSYCHOLOGICAL_THERAPIES, is_initial_imaging, is_psych_therapy_start
from .timeline import Event, Instants

FlagHit = tuple[str, tuple[str, ...]]
SURGICAL_TARGETS = frozenset({"recurrent_disc_herniation", "inadequate_decompression", "instability"})
INDEX_SURGERIES = frozenset({"laminectomy", "foraminotomy", "laminectomy_foraminotomy"})
GOOD_FACTORS = frozenset({"high_motivation", "family_support", "good_function", "moderate_psychological_factors"})
POOR_FACTORS = frozenset(
    {"divorced", "unemployed", "diffuse_complaints", "predominant_psychological_factors", "secondary_gain"}
)
SECOND_LINE = STAGE_ORDER.index("second_line")


def _ids(events: Sequence[Event]) -> tuple[str, ...]:
    return tuple(e.id for e in events)


def history_flags(ctx: Context) -> Iterator[FlagHit]:
    if not any(e.get("procedure") in INDEX_SURGERIES for e in ctx.timeline.of_type("surgery")):
        yield "surgical_history_missing", ()
    if ctx.urgent is not None:
        yield "red_flag_neuro", ctx.urgent.exam_ids


def initial_evaluation_flags(events: Sequence[Event]) -> Iterator[FlagHit]:
    if not any(is_initial_imaging(e) for e in events):
        yield "imaging_needed", ()
    if not any(e.type == "neuro_exam" for e in events):
        yield "neuro_exam_needed", ()
    if not any(e.type == "pain_assessment" for e in events):
        yield "pain_assessment_needed", ()


def episode_flags(ctx: Context) -> Iterator[FlagHit]:
    """Flags that use the current episode's facts and its pathway stage."""
    current = ctx.current
    events = current.episode.events if current is not None else ()
    rank = current.rank_at(ctx.now) if current is not None else 0
    yield from initial_evaluation_flags(events)
    imaging = [e for e in events if e.type == "imaging"]
    targets = [e for e in imaging if SURGICAL_TARGETS & set(e.get("findings") or ())]
    if targets:
        yield "surgical_target_on_imaging", _ids(targets)
    entrapment = [e for e in imaging if "nerve_entrapment_in_scar" in (e.get("findings") or ())]
    if entrapment and rank == len(STAGE_ORDER) - 1:
        yield "nerve_entrapment_in_scar", _ids(entrapment)
    facet = [e for e in events if e.type == "pain_assessment" and e.get("facet_suspected") is True]
    if facet:
        yield "facet_pain_suspected", _ids(facet)
    yield from _radicular(events, rank)
    yield from _escalation_gaps(events, rank)
    if current is not None and current.entries[1] is not None:
        complete = current.entries[1]
        unindicated = [e for e in imaging if e.t > complete and not e.get("indication")]
        if unindicated:
            yield "imaging_without_indication", _ids(unindicated)
    if current is not None and current.relief.at(ctx.now):
        yield "responding_to_treatment", current.relief.sources_at(ctx.now)


def _radicular(events: Sequence[Event], rank: int) -> Iterator[FlagHit]:
    assessments = [e for e in events if e.type == "pain_assessment"]
    if rank >= SECOND_LINE and assessments and assessments[-1].get("distribution") in ("radicular", "mixed"):
        yield "radicular_pain", (assessments[-1].id,)


def _escalation_gaps(events: Sequence[Event], rank: int) -> Iterator[FlagHit]:
    if rank >= SECOND_LINE and not any(is_psych_therapy_start(e) for e in events):
        yield "psychological_therapy_recommended", ()
    rehab = any(
        e.type == "therapy" and e.get("kind") == "multidisciplinary_rehab" and e.get("status") == "started"
        for e in events
    )
    if rank == len(STAGE_ORDER) - 1 and not rehab:
        yield "multidisciplinary_rehab_recommended", ()


def timing_flags(ctx: Context) -> Iterator[FlagHit]:
    """Flags about when something was done relative to the pathway stage at that instant (episode scope)."""
    current = ctx.current
    if current is None:
        return
    events = current.episode.events
    er_early = [
        e
        for e in _course_starts(ctx, "opioid_er")
        if current.episode.contains(e[0]) and current.rank_at(e[0]) < SECOND_LINE
    ]
    if er_early:
        yield "er_opioid_before_first_line_failed", tuple(fact_id for _, fact_id in er_early)
    scs_early = [
        e
        for e in events
        if e.type == "procedure" and e.get("kind") == "scs_trial" and current.rank_at(e.t) < SECOND_LINE
    ]
    if scs_early:
        yield "scs_before_other_therapies", _ids(scs_early)
    yield from _repeat_surgery(ctx, events)


def _course_starts(ctx: Context, drug_class: str) -> list[tuple[int, str]]:
    return [(c.start, c.start_id) for c in ctx.courses if c.drug_class == drug_class]


def _repeat_surgery(ctx: Context, events: Sequence[Event]) -> Iterator[FlagHit]:
    current = ctx.current
    assert current is not None
    targets = Instants(e for e in events if e.type == "imaging" and SURGICAL_TARGETS & set(e.get("findings") or ()))
    unmet = [
        e
        for e in events
        if e.type == "procedure"
        and e.get("kind") == "repeat_surgery"
        and not ctx.is_urgent_at(e.t)
        and (current.rank_at(e.t) < SECOND_LINE or targets.latest_before(e.t) is None)
    ]
    if unmet:
        yield "repeat_surgery_criteria_unmet", _ids(unmet)


def procedure_flags(ctx: Context) -> Iterator[FlagHit]:
    """Procedure and therapy flags over all facts."""
    procedures = ctx.timeline.of_type("procedure")
    unguided = [
        e
        for e in procedures
        if e.get("kind") == "epidural_steroid_injection"
        and e.get("approach") == "transforaminal"
        and e.get("image_guided") is not True
    ]
    if unguided:
        yield "transforaminal_without_image_guidance", _ids(unguided)
    assessments = Instants(ctx.timeline.of_type("pain_assessment"))
    axial = [
        e
        for e in procedures
        if e.get("kind") == "epidural_steroid_injection"
        and (before := assessments.latest_before(e.t)) is not None
        and before.get("distribution") == "axial"
    ]
    if axial:
        yield "esi_without_radicular_pain", _ids(axial)
    yield from _scs_flags(ctx, [e for e in procedures if e.get("kind") == "scs_trial"])
    yield from _therapy_flags(ctx)


def _therapy_flags(ctx: Context) -> Iterator[FlagHit]:
    pt_sessions = [
        e for e in ctx.events("therapy", kind="physical_therapy") if e.get("status") in ("started", "progress")
    ]
    if pt_sessions and all(e.get("modality") == "passive" for e in pt_sessions):
        yield "passive_pt_only", _ids(pt_sessions)
    tens = ctx.events("therapy", kind="tens")
    if tens:
        yield "tens_caution", _ids(tens)


def _scs_flags(ctx: Context, trials: list[Event]) -> Iterator[FlagHit]:
    if not trials:
        return
    prepared = Instants(
        e
        for e in ctx.timeline.of_type("therapy")
        if e.get("status") in ("started", "completed")
        and (e.get("kind") == "psychological_evaluation" or e.get("kind") in PSYCHOLOGICAL_THERAPIES)
    )
    unprepared = [e for e in trials if prepared.latest_before(e.t) is None]
    if unprepared:
        yield "scs_psychological_evaluation_needed", _ids(unprepared)
    relief = trials[-1].get("relief_percent")
    if relief is not None:
        positive = relief >= ctx.params.scs_positive_percent
        yield ("scs_trial_positive" if positive else "scs_trial_negative"), (trials[-1].id,)


def mbb_flags(ctx: Context) -> Iterator[FlagHit]:
    """Medial branch blocks positive per the policy profile's threshold (§5)."""
    params = ctx.params
    blocks = [
        e
        for e in ctx.events("procedure", kind="medial_branch_block")
        if e.get("relief_percent") is not None and e.get("relief_percent") >= params.mbb_relief_percent
    ]
    chosen: list[Event] = []
    for block in blocks:  # greedy: earliest qualifying blocks, each far enough after the previous one
        if not chosen or block.t - chosen[-1].t >= params.mbb_min_days_apart * DAY_US:
            chosen.append(block)
    if len(chosen) >= params.mbb_blocks_required:
        yield "mbb_positive", _ids(blocks)


def prognosis_flags(ctx: Context) -> Iterator[FlagHit]:
    records = ctx.timeline.of_type("psychosocial")
    if not records:
        return
    latest = records[-1]
    factors = set(latest.get("factors") or ())
    with_duration = [e for e in records if e.get("symptom_months_before_surgery") is not None]
    short = (
        bool(with_duration) and with_duration[-1].get("symptom_months_before_surgery") < ctx.params.symptom_months_good
    )
    if factors & POOR_FACTORS:
        yield "poor_prognostic_factors", (latest.id,)
    if factors & GOOD_FACTORS or short:
        ids = {latest.id} | ({with_duration[-1].id} if short else set())
        yield "good_prognostic_factors", tuple(sorted(ids))
