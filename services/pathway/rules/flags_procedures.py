"""Procedure and therapy flags over all facts (pathway-spec §4): injections, facet blocks and RF
denervation under the policy profile (§5), spinal cord stimulation, PT modality, TENS."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .context import Context
from .flags import SECOND_LINE
from .hits import Hit, ids_of
from .model import DAY_US
from .stage import PSYCHOLOGICAL_THERAPIES
from .timeline import Event, Instants

RFA = "radiofrequency_denervation"


def procedure_flags(ctx: Context) -> Iterator[Hit]:
    procedures = ctx.timeline.of_type("procedure")
    unguided = [
        e
        for e in procedures
        if e.get("kind") == "epidural_steroid_injection"
        and e.get("approach") == "transforaminal"
        and e.get("image_guided") is not True
    ]
    if unguided:
        yield Hit("transforaminal_without_image_guidance", ids_of(unguided))
    assessments = Instants(ctx.timeline.of_type("pain_assessment"))
    axial = [
        e
        for e in procedures
        if e.get("kind") == "epidural_steroid_injection"
        and (before := assessments.latest_before(e.t)) is not None
        and before.get("distribution") == "axial"
    ]
    if axial:
        yield Hit("esi_without_radicular_pain", ids_of(axial))
    yield from _scs_flags(ctx, [e for e in procedures if e.get("kind") == "scs_trial"], assessments)
    yield from _therapy_flags(ctx)
    yield from facet_flags(ctx)


def _therapy_flags(ctx: Context) -> Iterator[Hit]:
    pt_sessions = [
        e for e in ctx.events("therapy", kind="physical_therapy") if e.get("status") in ("started", "progress")
    ]
    if pt_sessions and all(e.get("modality") == "passive" for e in pt_sessions):
        yield Hit("passive_pt_only", ids_of(pt_sessions))
    tens = ctx.events("therapy", kind="tens")
    if tens:
        yield Hit("tens_caution", ids_of(tens))


def _prepared(ctx: Context) -> Instants:
    """Psychological evaluations and psychological therapies started or completed."""
    return Instants(
        e
        for e in ctx.timeline.of_type("therapy")
        if e.get("status") in ("started", "completed")
        and (e.get("kind") == "psychological_evaluation" or e.get("kind") in PSYCHOLOGICAL_THERAPIES)
    )


def _scs_flags(ctx: Context, trials: list[Event], assessments: Instants) -> Iterator[Hit]:
    if not trials:
        return
    prepared = _prepared(ctx)
    unprepared = [e for e in trials if prepared.latest_before(e.t) is None]
    if unprepared:
        yield Hit("scs_psychological_evaluation_needed", ids_of(unprepared))
    trial = trials[-1]
    relief = trial.get("relief_percent")
    if relief is None:
        return
    if relief < ctx.params.scs_positive_percent:
        yield Hit("scs_trial_negative", (trial.id,))
        return
    unmet = _unmet_implant_criteria(ctx, trial, prepared, assessments)
    if unmet:
        yield Hit("scs_implant_criteria_unmet", (trial.id,), "; ".join(unmet))
    else:
        yield Hit("scs_trial_positive", (trial.id,))


def _unmet_implant_criteria(ctx: Context, trial: Event, prepared: Instants, assessments: Instants) -> list[str]:
    unmet = []
    if ctx.rank_at(trial.t) < SECOND_LINE:
        stage = ctx.episode_at(trial.t)
        name = "initial evaluation" if stage is None else stage.stage_at(trial.t)[0].replace("_", " ")
        unmet.append(f"the trial was done in {name}, before second-line care")
    before = assessments.latest_before(trial.t)
    if before is None:
        unmet.append("no pain assessment before the trial shows radicular or mixed pain")
    elif before.get("distribution") not in ("radicular", "mixed"):
        unmet.append(f"the latest pain before the trial was {before.get('distribution')}, not radicular or mixed")
    if prepared.latest_before(trial.t) is None:
        unmet.append("no psychological evaluation before the trial")
    return unmet


def _positive_blocks(ctx: Context, blocks: Sequence[Event]) -> list[Event] | None:
    """The qualifying blocks if they meet the profile's threshold (§5), else None."""
    params = ctx.params
    qualifying = [
        e
        for e in blocks
        if e.get("relief_percent") is not None and e.get("relief_percent") >= params.mbb_relief_percent
    ]
    chosen: list[Event] = []
    for block in qualifying:  # greedy: earliest qualifying blocks, each far enough after the previous one
        if not chosen or block.t - chosen[-1].t >= params.mbb_min_days_apart * DAY_US:
            chosen.append(block)
    return qualifying if len(chosen) >= params.mbb_blocks_required else None


def _blocks_between(ctx: Context, since: int | None, before: int | None) -> list[Event]:
    """Medial branch blocks with no RFA after them: at or after `since` (the previous RFA's instant) and
    strictly before `before`."""
    return [
        e
        for e in ctx.events("procedure", kind="medial_branch_block")
        if (since is None or e.t >= since) and (before is None or e.t < before)
    ]


def facet_flags(ctx: Context) -> Iterator[Hit]:
    """mbb_positive: positive blocks with no RFA after them; rfa_without_positive_blocks: an RFA of the episode
    with no positive blocks since the previous RFA (blocks and RFA read from all facts)."""
    rfas = ctx.events("procedure", kind=RFA)
    positive = _positive_blocks(ctx, _blocks_between(ctx, rfas[-1].t if rfas else None, None))
    if positive:
        yield Hit("mbb_positive", ids_of(positive))
    current = ctx.current
    unsupported = []
    for rfa in rfas:
        if current is None or not any(e is rfa for e in current.episode.events):
            continue
        previous = max((r.t for r in rfas if r.t < rfa.t), default=None)
        if not _positive_blocks(ctx, _blocks_between(ctx, previous, rfa.t)):
            unsupported.append(rfa)
    if unsupported:
        yield Hit("rfa_without_positive_blocks", ids_of(unsupported))
