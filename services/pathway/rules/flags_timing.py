"""Flags about when something was done relative to the pathway stage at that instant (episode scope)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .context import Context
from .flags import SECOND_LINE, SURGICAL_TARGETS
from .hits import Hit, ids_of
from .stage import EpisodeStages
from .timeline import Event, Instants


def timing_flags(ctx: Context) -> Iterator[Hit]:
    current = ctx.current
    if current is None:
        return
    events = current.episode.events
    er_early = [
        c.start_id
        for c in ctx.courses
        if c.drug_class == "opioid_er" and current.episode.contains(c.start) and current.rank_at(c.start) < SECOND_LINE
    ]
    if er_early:
        yield Hit("er_opioid_before_first_line_failed", tuple(er_early))
    scs_early = [
        e
        for e in events
        if e.type == "procedure" and e.get("kind") == "scs_trial" and current.rank_at(e.t) < SECOND_LINE
    ]
    if scs_early:
        yield Hit("scs_before_other_therapies", ids_of(scs_early))
    yield from _repeat_surgery(ctx, current, events)


def _repeat_surgery(ctx: Context, current: EpisodeStages, events: Sequence[Event]) -> Iterator[Hit]:
    """Repeat surgery outside the urgent stage, not planned by a surgeon, too early or without a target."""
    targets = Instants(e for e in events if e.type == "imaging" and SURGICAL_TARGETS & set(e.get("findings") or ()))
    planned = Instants(e for e in events if e.type == "surgical_evaluation" and e.get("outcome") == "surgery_planned")
    unmet = [
        e
        for e in events
        if e.type == "procedure"
        and e.get("kind") == "repeat_surgery"
        and not ctx.is_urgent_at(e.t, evaluated_at_t=False)
        and planned.latest_before(e.t) is None
        and (current.rank_at(e.t) < SECOND_LINE or targets.latest_before(e.t) is None)
    ]
    if unmet:
        yield Hit("repeat_surgery_criteria_unmet", ids_of(unmet))
