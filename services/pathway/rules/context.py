"""Everything derived once from the facts that the stage, deadline and flag rules read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .courses import Course, OpioidEpisode, build_courses, opioid_episodes
from .params import Params
from .stage import EpisodeStages, episode_stages
from .timeline import Event, Instants, Timeline
from .urgent import UrgentRun, is_urgent_at, urgent_run


@dataclass(frozen=True)
class Context:
    timeline: Timeline
    params: Params
    now: int
    courses: Sequence[Course]
    opioid_episodes: Sequence[OpioidEpisode]
    episodes: Sequence[EpisodeStages]
    urgent: UrgentRun | None

    @property
    def current(self) -> EpisodeStages | None:
        return self.episodes[-1] if self.episodes else None

    def pathway_stage(self) -> tuple[str, int | None]:
        current = self.current
        if current is None:
            return "initial_evaluation", None
        return current.stage_at(self.now)

    def episode_at(self, t: int) -> EpisodeStages | None:
        """The episode whose facts include instant t (at a surgery's instant: the one it closes)."""
        return next((e for e in self.episodes if e.episode.contains(t)), None)

    def rank_at(self, t: int) -> int:
        """The pathway stage rank at t in the episode of t (0 before any fact)."""
        stages = self.episode_at(t)
        return 0 if stages is None else stages.rank_at(t)

    def is_urgent_at(self, t: int, evaluated_at_t: bool = True) -> bool:
        return is_urgent_at(self.timeline, t, evaluated_at_t)

    def opioid_episode_at(self, t: int) -> OpioidEpisode | None:
        return next((e for e in self.opioid_episodes if e.open_at(t)), None)

    def monitoring(self, field_name: str) -> Instants:
        """opioid_monitoring updates where `field_name` is true."""
        return Instants(self.timeline.where("opioid_monitoring", field_name, True))

    def events(self, type_name: str, **equal: object) -> list[Event]:
        """Events of a type whose data fields equal the given values (first field indexed)."""
        if not equal:
            return self.timeline.of_type(type_name)
        (first, value), *rest = equal.items()
        events = self.timeline.where(type_name, first, value)
        return [e for e in events if all(e.data.get(k) == v for k, v in rest)] if rest else events


def build_context(timeline: Timeline, params: Params) -> Context:
    courses = build_courses(timeline.of_type("medication"))
    stages = [episode_stages(episode, courses, params) for episode in timeline.episodes]
    return Context(timeline, params, timeline.now, courses, opioid_episodes(courses), stages, urgent_run(timeline))
