"""Care flags (pathway-spec §4) of the evaluation and the episode. Stage-dependent flags read the current
episode and the pathway stage (also while urgent); the others read all facts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .catalog import STAGE_ORDER
from .context import Context
from .hits import Hit, ids_of, words
from .stage import is_initial_imaging
from .timeline import Event
from .urgent import referral_runs

SURGICAL_TARGETS = frozenset({"recurrent_disc_herniation", "inadequate_decompression", "instability"})
TARGET_ADDRESSED_BY = frozenset({"repeat_surgery", "endoscopic_decompression"})
INDEX_SURGERIES = frozenset({"laminectomy", "foraminotomy", "laminectomy_foraminotomy"})
GOOD_FACTORS = frozenset({"high_motivation", "family_support", "good_function", "moderate_psychological_factors"})
POOR_FACTORS = frozenset(
    {"divorced", "unemployed", "diffuse_complaints", "predominant_psychological_factors", "secondary_gain"}
)
SECOND_LINE = STAGE_ORDER.index("second_line")
REFRACTORY = STAGE_ORDER.index("refractory")


def history_flags(ctx: Context) -> Iterator[Hit]:
    if not any(e.get("procedure") in INDEX_SURGERIES for e in ctx.timeline.of_type("surgery")):
        yield Hit("surgical_history_missing", ())
    if ctx.urgent is not None:
        yield Hit("red_flag_neuro", ctx.urgent.exam_ids)
        return
    pending = [run for run in referral_runs(ctx.timeline) if run.evaluated_by is None]
    if pending:
        yield Hit("surgical_evaluation_pending", tuple(i for run in pending for i in run.exam_ids))


def initial_evaluation_flags(events: Sequence[Event]) -> Iterator[Hit]:
    if not any(is_initial_imaging(e) for e in events):
        yield Hit("imaging_needed", ())
    if not any(e.type == "neuro_exam" for e in events):
        yield Hit("neuro_exam_needed", ())
    if not any(e.type == "pain_assessment" for e in events):
        yield Hit("pain_assessment_needed", ())


def _done_after(ctx: Context, event: Event, kinds: frozenset[str]) -> bool:
    """A procedure of one of `kinds` strictly after the event."""
    return any(p.t > event.t and p.get("kind") in kinds for p in ctx.timeline.of_type("procedure"))


def episode_flags(ctx: Context) -> Iterator[Hit]:
    """Flags that use the current episode's facts and its pathway stage."""
    current = ctx.current
    events = current.episode.events if current is not None else ()
    rank = current.rank_at(ctx.now) if current is not None else 0
    yield from initial_evaluation_flags(events)
    imaging = [e for e in events if e.type == "imaging"]
    yield from _imaging_findings(ctx, imaging, rank)
    facet = [
        e
        for e in events
        if e.type == "pain_assessment"
        and e.get("facet_suspected") is True
        and not _done_after(ctx, e, frozenset({"radiofrequency_denervation"}))
    ]
    if facet:
        yield Hit("facet_pain_suspected", ids_of(facet))
    if current is not None and current.entries[1] is not None:
        complete = current.entries[1]
        unindicated = [e for e in imaging if e.t > complete and not e.get("indication")]
        if unindicated:
            yield Hit("imaging_without_indication", ids_of(unindicated))
    if current is not None and current.relief.at(ctx.now):
        yield Hit("responding_to_treatment", current.relief.sources_at(ctx.now))


def _imaging_findings(ctx: Context, imaging: Sequence[Event], rank: int) -> Iterator[Hit]:
    """A surgical target until a repeat surgery or endoscopic decompression after it; scar entrapment when
    refractory."""
    targets = [
        e
        for e in imaging
        if SURGICAL_TARGETS & set(e.get("findings") or ()) and not _done_after(ctx, e, TARGET_ADDRESSED_BY)
    ]
    if targets:
        yield Hit("surgical_target_on_imaging", ids_of(targets))
    entrapment = [e for e in imaging if "nerve_entrapment_in_scar" in (e.get("findings") or ())]
    if entrapment and rank == REFRACTORY:
        yield Hit("nerve_entrapment_in_scar", ids_of(entrapment))


def latest_psychosocial(ctx: Context) -> Event | None:
    records = ctx.timeline.of_type("psychosocial")
    return records[-1] if records else None


def poor_factors(ctx: Context) -> list[str]:
    latest = latest_psychosocial(ctx)
    return [] if latest is None else sorted(POOR_FACTORS & set(latest.get("factors") or ()))


def _label(factor: str) -> str:
    return factor.replace("_", " ")


def prognosis_flags(ctx: Context) -> Iterator[Hit]:
    latest = latest_psychosocial(ctx)
    if latest is None:
        return
    poor = poor_factors(ctx)
    if poor:
        yield Hit("poor_prognostic_factors", (latest.id,), words(map(_label, poor)))
    records = ctx.timeline.of_type("psychosocial")
    with_duration = [e for e in records if e.get("symptom_months_before_surgery") is not None]
    months = with_duration[-1].get("symptom_months_before_surgery") if with_duration else None
    short = months is not None and months < ctx.params.symptom_months_good
    good = [_label(f) for f in sorted(GOOD_FACTORS & set(latest.get("factors") or ()))]
    if short:
        good.append(f"symptoms for {months:g} months before surgery, under {ctx.params.symptom_months_good}")
    if good:
        ids = {latest.id} | ({with_duration[-1].id} if short else set())
        yield Hit("good_prognostic_factors", tuple(sorted(ids)), words(good))
