"""Medication courses, opioid episodes and current MME (pathway-spec §1, derived terms).

Courses carry across surgical episodes: a patient on opioids stays on opioids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby

from .timeline import Event

NON_OPIOID_ANALGESICS = frozenset({"nsaid", "gabapentinoid", "sodium_channel_anticonvulsant", "tca", "snri"})
OPIOID_CLASSES = frozenset({"opioid_ir", "opioid_er"})
NEUROPATHIC_AGENTS = frozenset({"gabapentinoid", "sodium_channel_anticonvulsant", "tca", "snri"})


@dataclass
class Course:
    """One drug class from a `started` to the next `stopped`, half-open [start, end)."""

    drug_class: str
    start: int
    start_id: str
    end: int | None = None
    end_id: str | None = None
    mme: float | None = None
    increases: list[Event] = field(default_factory=list)

    def open_at(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class OpioidEpisode:
    """From the first opioid start while none is open to the instant no opioid course is open."""

    start: int
    end: int | None
    start_ids: tuple[str, ...]
    courses: tuple[Course, ...]

    def open_at(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


def build_courses(medications: Iterable[Event]) -> list[Course]:
    """All courses of all classes, ordered by start instant then class."""
    by_class: dict[str, list[Event]] = {}
    for event in medications:
        by_class.setdefault(str(event.get("drug_class")), []).append(event)
    courses: list[Course] = []
    for drug_class, events in by_class.items():
        courses.extend(_class_courses(drug_class, events))
    courses.sort(key=lambda c: (c.start, c.drug_class))
    return courses


def _class_courses(drug_class: str, events: list[Event]) -> list[Course]:
    courses: list[Course] = []
    current: Course | None = None
    for _, group in groupby(events, key=lambda e: e.t):
        at_instant = list(group)
        current = _apply_start_stop(drug_class, current, at_instant, courses)
        if current is not None:
            _apply_dose_changes(current, at_instant)
    return courses


def _apply_start_stop(
    drug_class: str, current: Course | None, at_instant: list[Event], courses: list[Course]
) -> Course | None:
    """A start at an instant wins over a stop at the same instant (the course continues / opens).

    A stop and a start at one instant continue the course, and the restart's `mme_per_day` is then the
    course's latest dose (clinical-rules §7); a start while the course stays open changes nothing."""
    starts = [e for e in at_instant if e.get("action") == "started"]
    stops = [e for e in at_instant if e.get("action") == "stopped"]
    if current is not None:
        if stops and not starts:
            current.end, current.end_id = stops[0].t, stops[0].id
            return None
        if stops:
            current.mme = _latest_mme(starts, current.mme)
        return current
    if not starts:
        return None
    course = Course(drug_class, starts[0].t, starts[0].id, mme=_latest_mme(starts, None))
    courses.append(course)
    return course


def _latest_mme(starts: list[Event], default: float | None) -> float | None:
    """The latest known `mme_per_day` among the starts of one instant (clinical order), else `default`."""
    known = [m for m in map(_mme, starts) if m is not None]
    return known[-1] if known else default


def _apply_dose_changes(course: Course, at_instant: list[Event]) -> None:
    for event in at_instant:
        action = event.get("action")
        if action in ("dose_increased", "dose_decreased"):
            if _mme(event) is not None:
                course.mme = _mme(event)
            if action == "dose_increased":
                course.increases.append(event)


def _mme(event: Event) -> float | None:
    value = event.get("mme_per_day")
    return None if value is None or isinstance(value, bool) else value


def opioid_episodes(courses: list[Course]) -> list[OpioidEpisode]:
    """Merge opioid_ir/opioid_er courses that overlap or touch into episodes."""
    opioid = sorted((c for c in courses if c.drug_class in OPIOID_CLASSES), key=lambda c: c.start)
    merged: list[list[Course]] = []
    end: int | None = None
    for course in opioid:
        if merged and (end is None or course.start <= end):
            merged[-1].append(course)
            end = None if end is None or course.end is None else max(end, course.end)
        else:
            merged.append([course])
            end = course.end
    return [_episode(group) for group in merged]


def _episode(group: list[Course]) -> OpioidEpisode:
    ends = [c.end for c in group]
    end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    first = group[0].start
    ids = tuple(c.start_id for c in group if c.start == first)
    return OpioidEpisode(first, end, ids, tuple(group))


def current_mme(courses: Iterable[Course], now: int) -> float | None:
    """Sum of the latest known MME of each open opioid course; None if none of them has one."""
    known = [c.mme for c in courses if c.drug_class in OPIOID_CLASSES and c.open_at(now) and c.mme is not None]
    return sum(known) if known else None
