"""Medication flags (pathway-spec §4) over all facts: opioid safety [G3][CDC22]."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .courses import NON_OPIOID_ANALGESICS, OPIOID_CLASSES, current_mme
from .model import DAY_US

FlagHit = tuple[str, tuple[str, ...]]


def opioid_flags(ctx: Context) -> Iterator[FlagHit]:
    yield from _opioid_before_non_opioid(ctx)
    yield from _no_meaningful_relief(ctx)
    episode = ctx.opioid_episode_at(ctx.now)
    if episode is None:
        return
    lookback = episode.start - ctx.params.monitoring_lookback_days * DAY_US
    if ctx.monitoring("plan_documented").first_at_or_after(lookback) is None:
        yield "opioid_monitoring_plan_missing", episode.start_ids
    if ctx.now - episode.start >= ctx.params.tolerance_days * DAY_US:
        yield "opioid_tolerance_risk", episode.start_ids
    yield from _naloxone(ctx, lookback)
    benzo = [c for c in ctx.courses if c.drug_class == "benzodiazepine" and c.open_at(ctx.now)]
    if benzo:
        opioid_ids = [c.start_id for c in episode.courses if c.open_at(ctx.now)]
        yield "opioid_benzodiazepine_coprescription", tuple(opioid_ids + [c.start_id for c in benzo])


def _opioid_before_non_opioid(ctx: Context) -> Iterator[FlagHit]:
    meds = ctx.events("medication", action="started")
    first_non_opioid = min((e.t for e in meds if e.get("drug_class") in NON_OPIOID_ANALGESICS), default=None)
    early = tuple(
        e.id
        for e in meds
        if e.get("drug_class") in OPIOID_CLASSES and (first_non_opioid is None or e.t <= first_non_opioid)
    )
    if early:
        yield "opioid_before_non_opioid_trial", early


def _no_meaningful_relief(ctx: Context) -> Iterator[FlagHit]:
    reviews = ctx.timeline.of_type("opioid_review")
    if not reviews:
        return
    latest = reviews[-1]
    episode = ctx.opioid_episode_at(latest.t)
    if (
        episode is not None
        and latest.t - episode.start >= ctx.params.opioid_benefit_days * DAY_US
        and latest.get("meaningful_relief") is False
    ):
        yield "opioid_no_meaningful_relief", (latest.id,)


def _naloxone(ctx: Context, lookback: int) -> Iterator[FlagHit]:
    mme = current_mme(ctx.courses, ctx.now)
    if mme is None or mme < ctx.params.naloxone_mme_threshold:
        return
    if ctx.monitoring("naloxone_offered").first_at_or_after(lookback) is None:
        yield "naloxone_indicated", _mme_sources(ctx)


def _mme_sources(ctx: Context) -> tuple[str, ...]:
    """The facts behind the current MME: each open opioid course's start and the latest update of that
    course stating `mme_per_day` (the dose that reached the threshold)."""
    ids: list[str] = []
    medications = ctx.timeline.of_type("medication")
    for course in ctx.courses:
        if course.drug_class not in OPIOID_CLASSES or not course.open_at(ctx.now):
            continue
        ids.append(course.start_id)
        of_class = [
            e for e in medications if e.get("drug_class") == course.drug_class and course.start <= e.t <= ctx.now
        ]
        restarts = {e.t for e in of_class if e.get("action") == "stopped"} | {course.start}
        dosed = [  # a `started` while the course stays open changes nothing (clinical-rules §7.3)
            e
            for e in of_class
            if e.get("mme_per_day") is not None
            and (
                e.get("action") in ("dose_increased", "dose_decreased")
                or (e.get("action") == "started" and e.t in restarts)
            )
        ]
        if dosed:
            ids.append(dosed[-1].id)
    return tuple(ids)
