"""Flags that prompt when care stalls or pain changes (pathway-spec §4, rule set 2026.2 §7.9): first line
without PT or a non-opioid, a PT referral that never started, no neuropathic agent for radicular pain,
worsening pain, psychological therapy and multidisciplinary rehabilitation in second line."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .courses import NEUROPATHIC_AGENTS
from .flags import REFRACTORY, SECOND_LINE, poor_factors
from .hits import Hit, ids_of, words
from .model import DAY_US
from .relief import worsened
from .stage import EpisodeStages, is_psych_therapy_start, non_opioid_available

FIRST_LINE = 1


def prompt_flags(ctx: Context) -> Iterator[Hit]:
    current = ctx.current
    if current is None:
        return
    rank = current.rank_at(ctx.now)
    yield from _first_line_gaps(ctx, current)
    yield from _pt_not_started(ctx, current)
    yield from _radicular(ctx, current, rank)
    yield from _pain_worsening(ctx, current)
    if rank >= SECOND_LINE:
        if not any(is_psych_therapy_start(e) for e in current.episode.events):
            yield Hit("psychological_therapy_recommended", ())
        yield from _rehab(ctx, current, rank)


def _first_line_gaps(ctx: Context, current: EpisodeStages) -> Iterator[Hit]:
    entered = current.entries[FIRST_LINE]
    if entered is None or ctx.now - entered < ctx.params.first_line_prompt_days * DAY_US:
        return
    pt = [e for e in current.episode.events if _is_pt(e.type, e.get("kind"))]
    if not any(e.get("status") in ("referred", "started") for e in pt):
        yield Hit("active_pt_not_started", ())
    if non_opioid_available(current.episode, ctx.courses) is None:
        yield Hit("non_opioid_not_started", ())


def _is_pt(type_name: str, kind: object) -> bool:
    return type_name == "therapy" and kind == "physical_therapy"


def _pt_not_started(ctx: Context, current: EpisodeStages) -> Iterator[Hit]:
    pt = ctx.events("therapy", kind="physical_therapy")
    late = ctx.now - ctx.params.pt_not_started_days * DAY_US
    stalled = [
        referral
        for referral in current.episode.events
        if _is_pt(referral.type, referral.get("kind"))
        and referral.get("status") == "referred"
        and referral.t <= late
        and not any(e.get("status") == "started" and e.t >= referral.t for e in pt)
        and not any(e.get("status") == "stopped" and e.t > referral.t for e in pt)
    ]
    if stalled:
        yield Hit("pt_not_started", ids_of(stalled))


def _radicular(ctx: Context, current: EpisodeStages, rank: int) -> Iterator[Hit]:
    latest = current.relief.latest_assessment
    if latest is None or latest.get("distribution") not in ("radicular", "mixed"):
        return
    if rank >= SECOND_LINE:
        yield Hit("radicular_pain", (latest.id,))
    if rank >= FIRST_LINE and not any(c.drug_class in NEUROPATHIC_AGENTS for c in ctx.courses):
        yield Hit("neuropathic_agent_not_tried", (latest.id,))


def _pain_worsening(ctx: Context, current: EpisodeStages) -> Iterator[Hit]:
    baseline, latest = current.relief.baseline, current.relief.latest_assessment
    if baseline is None or latest is None or latest is baseline:
        return
    params = ctx.params
    if worsened(baseline.get("pain_nrs"), latest.get("pain_nrs"), params.worsening_points, params.worsening_fraction):
        detail = f"pain {latest.get('pain_nrs')}/10 against a baseline of {baseline.get('pain_nrs')}/10"
        yield Hit("pain_worsening", (baseline.id, latest.id), detail)


def _rehab(ctx: Context, current: EpisodeStages, rank: int) -> Iterator[Hit]:
    events = current.episode.events
    started = any(
        e.type == "therapy" and e.get("kind") == "multidisciplinary_rehab" and e.get("status") == "started"
        for e in events
    )
    if started:
        return
    reasons: list[str] = []
    ids: list[str] = []
    if rank == REFRACTORY:
        reasons.append("pain refractory to second-line care")
    surgery = current.episode.surgery
    if surgery is not None and ctx.now - surgery >= ctx.params.rehab_after_surgery_days * DAY_US:
        reasons.append(f"pain persisting {ctx.params.rehab_after_surgery_days} days or more after surgery")
        ids.extend(current.episode.start_ids)
    poor = poor_factors(ctx)
    if poor:
        reasons.append("poor prognostic factors: " + words(f.replace("_", " ") for f in poor))
        ids.extend(e.id for e in ctx.timeline.of_type("psychosocial")[-1:])
    if reasons:
        yield Hit("multidisciplinary_rehab_recommended", tuple(ids), words(reasons))
