"""Facts in clinical order, split at `now`, and the surgical episodes (pathway-spec §0)."""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Fact, to_micros


class Event:
    """A fact with its UTC instant as integer microseconds (exact arithmetic, no offsets). Read-only by
    convention; a plain slotted class because evaluate() builds hundreds of them per call."""

    __slots__ = ("data", "id", "t", "type")

    def __init__(self, t: int, type_: str, data: Mapping[str, Any], id_: str):
        self.t, self.type, self.data, self.id = t, type_, data, id_

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __repr__(self) -> str:
        return f"Event({self.id!r}, {self.type!r}, t={self.t})"


def is_red_flag_exam(event: Event) -> bool:
    return bool(event.get("progressive_deficit")) or bool(event.get("cauda_equina_signs"))


def _tie_key(event: Event) -> tuple[Any, ...]:
    data_json = json.dumps(event.data, sort_keys=True, separators=(",", ":"), default=str)
    # Two neuro exams at one instant: the red-flag one counts as the latest (safer), so it sorts last.
    red_last = is_red_flag_exam(event) if event.type == "neuro_exam" else False
    return (red_last, data_json, event.id)


def ordered(events: list[Event]) -> list[Event]:
    """Clinical order: instant, then type name, then data as sorted-key JSON, then id; never arrival."""
    events.sort(key=lambda e: (e.t, e.type))
    start = 0
    while start < len(events):
        end = start + 1
        while end < len(events) and events[end].t == events[start].t and events[end].type == events[start].type:
            end += 1
        if end - start > 1:  # JSON only for real ties: keeps evaluate() fast
            events[start:end] = sorted(events[start:end], key=_tie_key)
        start = end
    return events


@dataclass(frozen=True)
class Episode:
    """A surgical episode from `start` (its surgery, or the earliest fact) to `end` (the next surgery; None
    while it is the current one). Its facts are those strictly after its surgery ("derived from the facts
    after it", spec §0) up to and including the next surgery's instant (clinical-rules §7.29); the first
    episode without a surgery includes its earliest fact."""

    start: int
    end: int | None
    start_ids: tuple[str, ...]
    events: tuple[Event, ...]
    surgery: int | None = None  # the instant of the surgery that starts it (None: the earliest fact does)

    def contains(self, t: int) -> bool:
        return self.start <= t and (self.end is None or t <= self.end)


class Timeline:
    """The patient's facts at or before `now`, ordered, with per-type views and episodes."""

    def __init__(self, facts: Sequence[Fact], now: int):
        events = [Event(to_micros(f.occurred_at), f.type, f.data, f.id) for f in facts]
        self.now = now
        self.future_instants = sorted(e.t for e in events if e.t > now)
        self.events = ordered([e for e in events if e.t <= now])
        self._by_type: dict[str, list[Event]] = {}
        for event in self.events:
            self._by_type.setdefault(event.type, []).append(event)
        self.episodes = _episodes(self.events, self.of_type("surgery"))
        self._indexes: dict[tuple[str, str], dict[Any, list[Event]]] = {}

    def of_type(self, type_name: str) -> list[Event]:
        return self._by_type.get(type_name, [])

    def where(self, type_name: str, field_name: str, value: Any) -> list[Event]:
        """Events of a type whose data field equals value, in clinical order (indexed once per field)."""
        key = (type_name, field_name)
        index = self._indexes.get(key)
        if index is None:
            index = {}
            for event in self.of_type(type_name):
                index.setdefault(event.data.get(field_name), []).append(event)
            self._indexes[key] = index
        return index.get(value, [])

    @property
    def current_episode(self) -> Episode | None:
        return self.episodes[-1] if self.episodes else None


def _episodes(events: list[Event], surgeries: list[Event]) -> list[Episode]:
    """Episodes start at the earliest fact (when it precedes every surgery) and at each surgery instant."""
    if not events:
        return []
    starts: dict[int, list[str]] = {}
    if not surgeries or events[0].t < surgeries[0].t:
        starts[events[0].t] = [events[0].id]
    for surgery in surgeries:
        starts.setdefault(surgery.t, []).append(surgery.id)
    instants = sorted(starts)
    surgery_instants = {surgery.t for surgery in surgeries}
    times = [e.t for e in events]
    result = []
    for index, start in enumerate(instants):
        end = instants[index + 1] if index + 1 < len(instants) else None
        hi = len(events) if end is None else bisect_right(times, end)
        lo = bisect_left(times, start) if start not in surgery_instants else bisect_right(times, start)
        surgery_at = start if start in surgery_instants else None
        result.append(Episode(start, end, tuple(starts[start]), tuple(events[lo:hi]), surgery_at))
    return result


class Instants:
    """Sorted instants of some events, for 'first at/after' and 'latest at/before' look-ups."""

    def __init__(self, events: Iterable[Event]):
        self.events = list(events)
        self.times = [e.t for e in self.events]

    def first_at_or_after(self, t: int) -> Event | None:
        index = bisect_left(self.times, t)
        return self.events[index] if index < len(self.events) else None

    def first_after(self, t: int) -> Event | None:
        index = bisect_right(self.times, t)
        return self.events[index] if index < len(self.events) else None

    def latest_before(self, t: int) -> Event | None:
        index = bisect_left(self.times, t)
        return self.events[index - 1] if index else None

    def __bool__(self) -> bool:
        return bool(self.events)
