"""Medication flags (pathway-spec §4) over all facts: opioid safety [G3][CDC22]."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .courses import NON_OPIOID_ANALGESICS, OPIOID_CLASSES, OpioidEpisode, current_mme
from .hits import Hit, words
from .model import DAY_US
from .opioid_reviews import episode_reviews, shows_no_relief

OVERDOSE_FACTORS = {"substance_use_disorder": "a substance use disorder", "prior_overdose": "a prior overdose"}


def opioid_flags(ctx: Context) -> Iterator[Hit]:
    yield from _opioid_before_non_opioid(ctx)
    episode = ctx.opioid_episode_at(ctx.now)
    if episode is None:
        return
    yield from _reviews(ctx, episode)
    lookback = episode.start - ctx.params.monitoring_lookback_days * DAY_US
    if ctx.monitoring("plan_documented").first_at_or_after(lookback) is None:
        yield Hit("opioid_monitoring_plan_missing", episode.start_ids)
    if ctx.now - episode.start >= ctx.params.tolerance_days * DAY_US:
        yield Hit("opioid_tolerance_risk", episode.start_ids)
    unknown = [c.start_id for c in episode.courses if c.open_at(ctx.now) and c.mme is None]
    if unknown:
        yield Hit("opioid_mme_unknown", tuple(unknown))
    yield from _naloxone(ctx, lookback)
    benzo = [c for c in ctx.courses if c.drug_class == "benzodiazepine" and c.open_at(ctx.now)]
    if benzo:
        opioid_ids = [c.start_id for c in episode.courses if c.open_at(ctx.now)]
        yield Hit("opioid_benzodiazepine_coprescription", tuple(opioid_ids + [c.start_id for c in benzo]))


def _opioid_before_non_opioid(ctx: Context) -> Iterator[Hit]:
    meds = ctx.events("medication", action="started")
    first_non_opioid = min((e.t for e in meds if e.get("drug_class") in NON_OPIOID_ANALGESICS), default=None)
    early = tuple(
        e.id
        for e in meds
        if e.get("drug_class") in OPIOID_CLASSES and (first_non_opioid is None or e.t <= first_non_opioid)
    )
    if early:
        yield Hit("opioid_before_non_opioid_trial", early)


def _reviews(ctx: Context, episode: OpioidEpisode) -> Iterator[Hit]:
    """The latest review of the current opioid episode: no relief (from 7 days in), tolerance reported."""
    reviews = episode_reviews(ctx, episode)
    if not reviews:
        return
    latest = reviews[-1]
    if latest.t - episode.start >= ctx.params.opioid_benefit_days * DAY_US and shows_no_relief(ctx, latest):
        yield Hit("opioid_no_meaningful_relief", (latest.id,))
    if latest.get("tolerance_or_hyperalgesia") is True:
        yield Hit("opioid_tolerance_or_hyperalgesia_reported", (latest.id,))


def _naloxone(ctx: Context, lookback: int) -> Iterator[Hit]:
    """Naloxone for every CDC 2022 overdose risk: >= 50 MME/day, a benzodiazepine, substance use disorder,
    prior overdose (a factor recorded in any psychosocial update counts: the history does not go away)."""
    if ctx.monitoring("naloxone_offered").first_at_or_after(lookback) is not None:
        return
    risks: list[str] = []
    ids: list[str] = []
    mme = current_mme(ctx.courses, ctx.now)
    if mme is not None and mme >= ctx.params.naloxone_mme_threshold:
        risks.append(f"a dose of {mme:g} MME/day ({ctx.params.naloxone_mme_threshold} or more)")
        ids.extend(_mme_sources(ctx))
    benzo = [c for c in ctx.courses if c.drug_class == "benzodiazepine" and c.open_at(ctx.now)]
    if benzo:
        risks.append("a benzodiazepine taken with the opioid")
        ids.extend(c.start_id for c in benzo)
    for factor, label in OVERDOSE_FACTORS.items():
        records = [e for e in ctx.timeline.of_type("psychosocial") if factor in (e.get("factors") or ())]
        if records:
            risks.append(label)
            ids.extend(e.id for e in records)
    if risks:
        yield Hit("naloxone_indicated", tuple(dict.fromkeys(ids)), words(risks))


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
        dosed = [  # a `started` while the course stays open changes nothing (clinical-rules §7)
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
