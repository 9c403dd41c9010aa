"""The instants after `now` at which time alone may change the assessment (pathway-spec §0): the engine
re-evaluates at each candidate and returns the first that changes stage, flags or deadlines."""

from __future__ import annotations

from .context import Context
from .courses import OPIOID_CLASSES
from .model import DAY_US


def time_thresholds(ctx: Context) -> set[int]:
    """Stage entries (42/56-day timers), 28 days on opioids, the 7-day and 21-day opioid review marks, the
    28-day baseline delay, the 14-day first-line prompts, 28 days after a PT referral, 365 days after surgery."""
    params = ctx.params
    thresholds: set[int] = set()
    current = ctx.current
    if current is not None:
        thresholds.update(current.future_entries(ctx.now))
        if current.entries[1] is not None:
            thresholds.add(current.entries[1] + params.first_line_prompt_days * DAY_US)
        surgery = current.episode.surgery
        if surgery is not None:
            thresholds.add(surgery + params.baseline_delay_days * DAY_US)
            thresholds.add(surgery + params.rehab_after_surgery_days * DAY_US)
        for event in current.episode.events:
            if (
                event.type == "therapy"
                and event.get("kind") == "physical_therapy"
                and event.get("status") == "referred"
            ):
                thresholds.add(event.t + params.pt_not_started_days * DAY_US)
    episode = ctx.opioid_episode_at(ctx.now)
    if episode is not None:
        thresholds.add(episode.start + params.tolerance_days * DAY_US)
        thresholds.add(episode.start + params.opioid_benefit_days * DAY_US)
        for course in episode.courses:
            if course.drug_class in OPIOID_CLASSES:
                thresholds.add(course.start + params.opioid_review_min_days * DAY_US)
    return {t for t in thresholds if t > ctx.now}
