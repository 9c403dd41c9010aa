"""Stage of the pathway (pathway-spec §2): entry instants per episode and the urgent overlay.

Entry instants are computed once from the facts; each depends only on facts at or before itself, so
"the stage at instant t" is the highest stage whose entry instant is <= t. Second line needs the latest
assessment to fail the 30 % test (an inapplicable test does not escalate). Escalation is therefore one way
within an episode by construction. An entry instant may lie after `now` when only time is missing
(PT start + 42 days, psychological therapy + 56 days): that is a time-driven change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .catalog import STAGE_ORDER
from .courses import NON_OPIOID_ANALGESICS, Course
from .model import DAY_US
from .params import Params
from .relief import ReliefTimeline
from .timeline import Episode, Event

PSYCHOLOGICAL_THERAPIES = frozenset({"cbt", "biofeedback", "relaxation_training", "supportive_psychotherapy"})
INTERVENTIONAL = frozenset(
    {"epidural_steroid_injection", "medial_branch_block", "radiofrequency_denervation", "scs_trial"}
)


def is_active_pt_start(event: Event) -> bool:
    return (
        event.type == "therapy"
        and event.get("kind") == "physical_therapy"
        and event.get("status") == "started"
        and event.get("modality", "active") != "passive"
    )


def is_psych_therapy_start(event: Event) -> bool:
    return event.type == "therapy" and event.get("kind") in PSYCHOLOGICAL_THERAPIES and event.get("status") == "started"


def is_initial_imaging(event: Event) -> bool:
    return event.type == "imaging" and event.get("modality") in ("mri", "ct")


@dataclass(frozen=True)
class EpisodeStages:
    """Entry instant of each pathway stage in one episode (None: not reached within the episode)."""

    episode: Episode
    entries: tuple[int | None, ...]  # aligned with STAGE_ORDER
    first_active_pt: Event | None
    relief: ReliefTimeline

    def stage_at(self, t: int) -> tuple[str, int]:
        """The pathway stage at t and the instant it was entered."""
        best = 0
        for index, entry in enumerate(self.entries):
            if entry is not None and entry <= t:
                best = index
        entry = self.entries[best]
        return STAGE_ORDER[best], self.episode.start if entry is None else entry

    def rank_at(self, t: int) -> int:
        return STAGE_ORDER.index(self.stage_at(t)[0])

    def future_entries(self, now: int) -> list[int]:
        return [entry for entry in self.entries if entry is not None and entry > now]


def baseline_from(episode: Episode, params: Params) -> int | None:
    """The first instant a pain assessment can be the episode's baseline (None: any assessment can)."""
    return None if episode.surgery is None else episode.surgery + params.baseline_delay_days * DAY_US


def episode_stages(episode: Episode, courses: Sequence[Course], params: Params) -> EpisodeStages:
    relief = ReliefTimeline(episode.events, params.relief_fraction, baseline_from(episode, params))
    first_line = _initial_evaluation_complete(episode.events)
    first_pt = next((e for e in episode.events if is_active_pt_start(e)), None)
    second = _second_line_entry(episode, first_line, first_pt, courses, relief, params)
    third = _refractory_entry(episode, second, relief, params)
    entries = tuple(_within(episode, t) for t in (episode.start, first_line, second, third))
    return EpisodeStages(episode, entries, first_pt, relief)


def _within(episode: Episode, t: int | None) -> int | None:
    """An entry only counts while the episode lasts (a new surgery starts over)."""
    return t if t is not None and episode.contains(t) else None


def _first_time(events: Sequence[Event], keep: Callable[[Event], bool]) -> int | None:
    return next((e.t for e in events if keep(e)), None)


def _initial_evaluation_complete(events: Sequence[Event]) -> int | None:
    parts = (
        _first_time(events, is_initial_imaging),
        _first_time(events, lambda e: e.type == "neuro_exam"),
        _first_time(events, lambda e: e.type == "pain_assessment"),
    )
    return None if any(p is None for p in parts) else max(p for p in parts if p is not None)


def non_opioid_available(episode: Episode, courses: Sequence[Course]) -> int | None:
    """Earliest instant a non-opioid analgesic course was open at the episode start or started in it."""
    starts = [
        c.start
        for c in courses
        if c.drug_class in NON_OPIOID_ANALGESICS and (c.open_at(episode.start) or episode.contains(c.start))
    ]
    return max(min(starts), episode.start) if starts else None


def _second_line_entry(
    episode: Episode,
    first_line: int | None,
    first_pt: Event | None,
    courses: Sequence[Course],
    relief: ReliefTimeline,
    params: Params,
) -> int | None:
    if first_line is None or first_pt is None:
        return None
    non_opioid = non_opioid_available(episode, courses)
    assessed_from = first_pt.t + params.pt_assessment_after_days * DAY_US
    outcome = _first_time(episode.events, lambda e: e.type == "pain_assessment" and e.t >= assessed_from)
    if non_opioid is None or outcome is None:
        return None
    ready = max(first_line, first_pt.t + params.first_line_trial_days * DAY_US, non_opioid, outcome)
    return relief.first_failing(ready)


def _refractory_entry(episode: Episode, second: int | None, relief: ReliefTimeline, params: Params) -> int | None:
    if second is None:
        return None
    psych = _first_time(episode.events, is_psych_therapy_start)
    procedure = _first_time(episode.events, lambda e: e.type == "procedure" and e.get("kind") in INTERVENTIONAL)
    if psych is None or procedure is None:
        return None
    ready = max(second, psych + params.psych_therapy_days * DAY_US, procedure)
    return relief.first_without_relief(ready)
