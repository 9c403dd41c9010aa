"""evaluate(facts, now, params) -> Assessment: the pure entry point of the pathway engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from .catalog import FLAG_RULES, PROFILE_DEPENDENT_FLAGS, RULE_SET_VERSION, URGENT
from .context import Context, build_context
from .deadlines import Draft, episode_deadlines, merge, procedure_follow_ups, pt_deadlines, urgent_referrals
from .deadlines_opioid import monitoring_plans, opioid_reviews, recurring_checks
from .flags import episode_flags, history_flags, mbb_flags, procedure_flags, prognosis_flags, timing_flags
from .flags_opioid import opioid_flags
from .model import DAY_US, Assessment, Deadline, Fact, Flag, Recommendation, from_micros, to_micros
from .params import PROFILE_SOURCES, Params, params_for
from .timeline import Timeline

_DEFAULT_PARAMS = params_for()


def evaluate(facts: Sequence[Fact], now: datetime, params: Params | None = None) -> Assessment:
    """The pathway assessment the facts give at `now`. Facts after `now` only count and schedule."""
    params = params or _DEFAULT_PARAMS
    now_us = to_micros(now)
    timeline = Timeline(facts, now_us)
    ctx = build_context(timeline, params)
    stage, since, pathway = _stage(ctx)
    flags = _flags(ctx)
    deadlines = merge(_drafts(ctx))
    return Assessment(
        stage=stage,
        stage_since=_dt(since),
        rule_set_version=RULE_SET_VERSION,
        profile=params.profile,
        params_digest=params.digest(),
        evaluated_at=from_micros(now_us),
        next_evaluation_at=_dt(_next_evaluation(facts, ctx, (stage, since, flags, deadlines))),
        updates_evaluated=len(facts),
        flags=tuple(flags),
        recommendations=tuple(_recommendation(flag, params) for flag in flags),
        deadlines=tuple(deadlines),
        pathway_stage=pathway[0],
        pathway_stage_since=_dt(pathway[1]),
    )


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def _stage(ctx: Context) -> tuple[str, int | None, tuple[str, int | None]]:
    pathway = ctx.pathway_stage()
    if ctx.urgent is not None:
        return URGENT, ctx.urgent.since, pathway
    return pathway[0], pathway[1], pathway


def _flag_hits(ctx: Context) -> Iterator[tuple[str, tuple[str, ...]]]:
    for rule in (
        history_flags,
        episode_flags,
        timing_flags,
        procedure_flags,
        mbb_flags,
        opioid_flags,
        prognosis_flags,
    ):
        yield from rule(ctx)


def _flags(ctx: Context) -> list[Flag]:
    hits: dict[str, set[str]] = {}
    for code, ids in _flag_hits(ctx):
        hits.setdefault(code, set()).update(ids)
    return [Flag(code, tuple(sorted(hits[code])), FLAG_RULES[code].rationale) for code in sorted(hits)]


def _recommendation(flag: Flag, params: Params) -> Recommendation:
    rule = FLAG_RULES[flag.code]
    text = rule.text
    if flag.code in PROFILE_DEPENDENT_FLAGS:
        text = (
            f"{text.rstrip('.')} (policy profile {params.profile}: "
            f"{PROFILE_SOURCES.get(params.profile, params.profile)})."
        )
    return Recommendation(flag.code, text, rule.citation, flag.fact_ids)


def _drafts(ctx: Context) -> Iterable[Draft]:
    for rule in (
        urgent_referrals,
        episode_deadlines,
        pt_deadlines,
        procedure_follow_ups,
        monitoring_plans,
        opioid_reviews,
        recurring_checks,
    ):
        yield from rule(ctx)


def _signature(stage: str, since: int | None, flags: list[Flag], deadlines: list[Deadline]) -> tuple:
    return (
        stage,
        since,
        tuple(f.code for f in flags),
        tuple((d.kind, d.due_at, d.status) for d in deadlines),
    )


def _next_evaluation(facts: Sequence[Fact], ctx: Context, current: tuple) -> int | None:
    """Earliest instant > now where stage, flags or deadlines change with no new fact (a due date is not)."""
    future_fact = ctx.timeline.future_instants[0] if ctx.timeline.future_instants else None
    candidates = sorted(t for t in _time_thresholds(ctx) if future_fact is None or t < future_fact)
    before = _signature(current[0], current[1], current[2], current[3])
    for candidate in candidates:
        later = build_context(Timeline(facts, candidate), ctx.params)
        stage, since, _ = _stage(later)
        if _signature(stage, since, _flags(later), merge(_drafts(later))) != before:
            return candidate
    return future_fact


def _time_thresholds(ctx: Context) -> set[int]:
    """Instants after now where time alone may change the result: stage entries, 28 days on opioids."""
    thresholds: set[int] = set()
    if ctx.current is not None:
        thresholds.update(ctx.current.future_entries(ctx.now))
    episode = ctx.opioid_episode_at(ctx.now)
    if episode is not None:
        tolerance = episode.start + ctx.params.tolerance_days * DAY_US
        if tolerance > ctx.now:
            thresholds.add(tolerance)
    return {t for t in thresholds if t > ctx.now}
