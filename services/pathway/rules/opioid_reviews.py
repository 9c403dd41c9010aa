"""Opioid reviews read against the opioid episode and the surgical episode's baseline (pathway-spec §3, §4)."""

from __future__ import annotations

from .context import Context
from .courses import OpioidEpisode
from .timeline import Event


def episode_reviews(ctx: Context, episode: OpioidEpisode) -> list[Event]:
    """The opioid reviews made while the opioid episode was open, in clinical order."""
    return [r for r in ctx.timeline.of_type("opioid_review") if episode.open_at(r.t)]


def shows_no_relief(ctx: Context, review: Event) -> bool:
    """The review says no meaningful relief, or its own pain score is at or above the baseline of the
    surgical episode it belongs to (the baseline as the facts now describe it)."""
    if review.get("meaningful_relief") is False:
        return True
    own = review.get("pain_nrs")
    stages = ctx.episode_at(review.t)
    baseline = None if stages is None else stages.relief.baseline
    base = None if baseline is None else baseline.get("pain_nrs")
    return own is not None and base is not None and own >= base
