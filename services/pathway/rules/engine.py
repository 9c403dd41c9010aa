"""evaluate(facts, now, params) -> Assessment: the pure entry point of the pathway engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from .catalog import FLAG_RULES, PROFILE_DEPENDENT_FLAGS, RULE_SET_VERSION, URGENT
from .context import Context, build_context
from .courses import current_mme
from .deadlines import Draft, episode_deadlines, merge, procedure_follow_ups, pt_deadlines, urgent_referrals
from .deadlines_opioid import monitoring_plans, opioid_reviews, recurring_checks
from .flags import episode_flags, history_flags, prognosis_flags
from .flags_opioid import opioid_flags
from .flags_procedures import procedure_flags
from .flags_prompts import prompt_flags
from .flags_timing import timing_flags
from .hits import Hit
from .model import Assessment, Deadline, Fact, Flag, Recommendation, from_micros, to_micros
from .params import PROFILE_SOURCES, Params, params_for
from .reason import pain_trend, stage_reason
from .schedule import time_thresholds
from .sources import name_of
from .timeline import Timeline

_DEFAULT_PARAMS = params_for()


def evaluate(facts: Sequence[Fact], now: datetime, params: Params | None = None) -> Assessment:
    """The pathway assessment the facts give at `now`. Facts after `now` only count and schedule."""
    params = params or _DEFAULT_PARAMS
    now_us = to_micros(now)
    ctx = build_context(Timeline(facts, now_us), params)
    stage, since, pathway = _stage(ctx)
    hits = _hits(ctx)
    flags = _flags(hits)
    deadlines = merge(_drafts(ctx))
    return Assessment(
        stage=stage,
        stage_since=_dt(since),
        rule_set_version=RULE_SET_VERSION,
        profile=params.profile,
        params_digest=params.digest(),
        evaluated_at=from_micros(now_us),
        next_evaluation_at=_dt(_next_evaluation(facts, ctx, _signature(stage, since, flags, deadlines))),
        updates_evaluated=len(facts),
        flags=tuple(flags),
        recommendations=tuple(_recommendation(flag, hits, params) for flag in flags),
        deadlines=tuple(deadlines),
        pathway_stage=pathway[0],
        pathway_stage_since=_dt(pathway[1]),
        stage_reason=stage_reason(ctx),
        pain=pain_trend(ctx),
        current_mme=current_mme(ctx.courses, now_us),
    )


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def _stage(ctx: Context) -> tuple[str, int | None, tuple[str, int | None]]:
    pathway = ctx.pathway_stage()
    if ctx.urgent is not None:
        return URGENT, ctx.urgent.since, pathway
    return pathway[0], pathway[1], pathway


def _flag_hits(ctx: Context) -> Iterator[Hit]:
    for rule in (history_flags, episode_flags, prompt_flags, timing_flags, procedure_flags, opioid_flags):
        yield from rule(ctx)
    yield from prognosis_flags(ctx)


def _hits(ctx: Context) -> dict[str, Hit]:
    """One hit per flag code: fact ids united, the first detail kept."""
    hits: dict[str, Hit] = {}
    for hit in _flag_hits(ctx):
        known = hits.get(hit.code)
        if known is None:
            hits[hit.code] = hit
        else:
            hits[hit.code] = Hit(hit.code, known.ids + hit.ids, known.detail or hit.detail)
    return hits


def _flags(hits: dict[str, Hit]) -> list[Flag]:
    return [Flag(code, tuple(sorted(set(hits[code].ids))), FLAG_RULES[code].rationale) for code in sorted(hits)]


def profile_phrase(params: Params) -> str:
    """The policy profile that decided a facet recommendation, its block threshold and its source."""
    blocks = (
        f"one block with at least {params.mbb_relief_percent} % relief"
        if params.mbb_blocks_required == 1
        else f"{params.mbb_blocks_required} blocks at least {params.mbb_min_days_apart} days apart, each with "
        f"at least {params.mbb_relief_percent} % relief"
    )
    source = PROFILE_SOURCES.get(params.profile)
    named = f"; {source}: {name_of(source)}" if source else ""
    return f"(policy profile {params.profile}: {blocks}{named})"


def _recommendation(flag: Flag, hits: dict[str, Hit], params: Params) -> Recommendation:
    rule = FLAG_RULES[flag.code]
    values: dict[str, Any] = {
        "detail": hits[flag.code].detail or "",
        "profile": profile_phrase(params) if flag.code in PROFILE_DEPENDENT_FLAGS else "",
        "g3": name_of("G3"),
        "ng59": name_of("NICE NG59"),
    }
    return Recommendation(flag.code, rule.text.format(**values), rule.citation, flag.fact_ids)


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


Signature = tuple[str, int | None, tuple[str, ...], tuple[tuple[str, datetime, str], ...]]


def _signature(stage: str, since: int | None, flags: list[Flag], deadlines: list[Deadline]) -> Signature:
    return (
        stage,
        since,
        tuple(f.code for f in flags),
        tuple((d.kind, d.due_at, d.status) for d in deadlines),
    )


def _next_evaluation(facts: Sequence[Fact], ctx: Context, before: Signature) -> int | None:
    """Earliest instant > now where stage, flags or deadlines change with no new fact (a due date is not)."""
    future_fact = ctx.timeline.future_instants[0] if ctx.timeline.future_instants else None
    candidates = sorted(t for t in time_thresholds(ctx) if future_fact is None or t < future_fact)
    for candidate in candidates:
        later = build_context(Timeline(facts, candidate), ctx.params)
        stage, since, _ = _stage(later)
        if _signature(stage, since, _flags(_hits(later)), merge(_drafts(later))) != before:
            return candidate
    return future_fact
