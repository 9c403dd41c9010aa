"""Opioid deadlines (pathway-spec §3): monitoring plan, reviews, PDMP and urine drug tests [G3][CDC22]."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .courses import OPIOID_CLASSES, OpioidEpisode
from .deadlines import Draft, Resolution, resolved_by
from .model import DAY_US
from .opioid_reviews import shows_no_relief
from .timeline import Instants


def _ended(episode: OpioidEpisode | None) -> Resolution | None:
    return None if episode is None or episode.end is None else Resolution(episode.end, None)


def monitoring_plans(ctx: Context) -> Iterator[Draft]:
    plans = ctx.monitoring("plan_documented")
    lookback = ctx.params.monitoring_lookback_days * DAY_US
    for episode in ctx.opioid_episodes:
        yield Draft(
            "opioid_monitoring_plan",
            episode.start,
            episode.start_ids,
            satisfied=resolved_by(plans.first_at_or_after(episode.start - lookback)),
            cancelled=_ended(episode),
        )


def opioid_reviews(ctx: Context) -> Iterator[Draft]:
    reviews = Instants(ctx.timeline.of_type("opioid_review"))
    params = ctx.params
    for course in ctx.courses:
        if course.drug_class not in OPIOID_CLASSES:
            continue
        cancelled = None if course.end is None else Resolution(course.end, course.end_id)
        yield Draft(  # an earlier review is an early check, not the 4-week reassessment
            "opioid_review_4w",
            course.start + params.opioid_review_days * DAY_US,
            (course.start_id,),
            satisfied=resolved_by(reviews.first_at_or_after(course.start + params.opioid_review_min_days * DAY_US)),
            cancelled=cancelled,
        )
        for increase in course.increases:
            yield Draft(
                "opioid_review_dose_change",
                increase.t + params.dose_change_review_days * DAY_US,
                (increase.id,),
                satisfied=resolved_by(reviews.first_after(increase.t)),
                cancelled=_ended(ctx.opioid_episode_at(increase.t)),
            )
    yield from _periodic_reviews(ctx, reviews)
    yield from _taper_follow_ups(ctx, reviews)
    yield from _stop_follow_ups(ctx)


def _periodic_reviews(ctx: Context, reviews: Instants) -> Iterator[Draft]:
    params = ctx.params
    for review in reviews.events:
        episode = ctx.opioid_episode_at(review.t)
        if episode is not None:
            yield Draft(
                "opioid_review_periodic",
                review.t + params.periodic_review_days * DAY_US,
                (review.id,),
                satisfied=resolved_by(reviews.first_after(review.t)),
                cancelled=_ended(episode),
            )


def _taper_follow_ups(ctx: Context, reviews: Instants) -> Iterator[Draft]:
    """Monthly follow-up after each review on opioids, from 7 days into the episode, showing no relief."""
    params = ctx.params
    for review in reviews.events:
        episode = ctx.opioid_episode_at(review.t)
        if (
            episode is not None
            and review.t - episode.start >= params.opioid_benefit_days * DAY_US
            and shows_no_relief(ctx, review)
        ):
            yield Draft(
                "opioid_taper_follow_up",
                review.t + params.taper_follow_up_days * DAY_US,
                (review.id,),
                satisfied=resolved_by(reviews.first_after(review.t)),
                cancelled=_ended(episode),
            )


def _stop_follow_ups(ctx: Context) -> Iterator[Draft]:
    """A withdrawal check after each opioid episode of 28 days or more: a pain assessment or opioid review
    after its end; a new opioid episode first cancels it."""
    params = ctx.params
    checks = Instants(
        sorted(ctx.timeline.of_type("pain_assessment") + ctx.timeline.of_type("opioid_review"), key=lambda e: e.t)
    )
    for index, episode in enumerate(ctx.opioid_episodes):
        end = episode.end
        if end is None or end - episode.start < params.stop_follow_up_min_days * DAY_US:
            continue
        following = ctx.opioid_episodes[index + 1] if index + 1 < len(ctx.opioid_episodes) else None
        yield Draft(
            "opioid_stop_follow_up",
            end + params.stop_follow_up_days * DAY_US,
            tuple(sorted({c.end_id for c in episode.courses if c.end == end and c.end_id is not None})),
            satisfied=resolved_by(checks.first_after(end)),
            cancelled=None if following is None else Resolution(following.start, following.start_ids[0]),
        )


def recurring_checks(ctx: Context) -> Iterator[Draft]:
    """PDMP every 90 days and urine drug test every 365 days, from each opioid episode's start."""
    lookback = ctx.params.monitoring_lookback_days * DAY_US
    for kind, field_name, interval_days in (
        ("pdmp_review", "pdmp_checked", ctx.params.pdmp_interval_days),
        ("urine_drug_test", "urine_drug_test", ctx.params.udt_interval_days),
    ):
        checks = ctx.monitoring(field_name)
        for episode in ctx.opioid_episodes:
            in_scope = [
                c
                for c in checks.events
                if c.t >= episode.start - lookback and (episode.end is None or c.t < episode.end)
            ]
            dues = [(episode.start, episode.start_ids)] + [(c.t + interval_days * DAY_US, (c.id,)) for c in in_scope]
            for due, ids in dues:
                yield Draft(
                    kind,
                    due,
                    ids,
                    satisfied=resolved_by(checks.first_at_or_after(due - lookback)),
                    cancelled=_ended(episode),
                )
