"""Baseline and meaningful relief over time within one surgical episode (pathway-spec §1).

The baseline is the earliest assessment made at least 28 days (default) after the episode's surgery (acute
post-operative pain is no baseline). Meaningful relief (default 30 %, CDC22/IMMPACT) at t: the latest pain
assessment at or before t is at least 30 % below the baseline (pain, and PEG where both carry it); or the
latest opioid review / therapy update stating `meaningful_relief` says true, no later pain assessment fails
the 30 % test, and its own `pain_nrs`, if any, is below the baseline's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import NamedTuple

from .timeline import Event

_STATED_RELIEF_TYPES = frozenset({"opioid_review", "therapy"})


def improved(baseline: object, latest: object, fraction: Fraction) -> bool | None:
    """latest <= baseline * (1 - fraction), exactly; None when the baseline is 0 (test does not apply)."""
    if baseline is None or latest is None or isinstance(baseline, bool) or isinstance(latest, bool):
        return None
    if type(baseline) is int and type(latest) is int:  # exact integer path (NRS)
        if baseline <= 0:
            return None
        return latest * fraction.denominator <= baseline * (fraction.denominator - fraction.numerator)
    if baseline <= 0:  # type: ignore[operator]
        return None
    margin = float(latest) - float(baseline) * (1 - float(fraction))  # type: ignore[arg-type]
    if abs(margin) > 1e-9:  # clearly on one side: the float answer is the exact answer
        return margin < 0
    # At the boundary decide with decimal-exact arithmetic (7.0 vs 10 at 30 % counts as 30 %).
    return Fraction(str(latest)) <= Fraction(str(baseline)) * (1 - fraction)


def worsened(baseline: object, latest: object, points: int, fraction: Fraction) -> bool:
    """latest is at least `points` and at least `fraction` above the baseline, exactly."""
    if not isinstance(baseline, (int, float)) or not isinstance(latest, (int, float)):
        return False
    if isinstance(baseline, bool) or isinstance(latest, bool):
        return False
    base, late = Fraction(str(baseline)), Fraction(str(latest))
    return late - base >= points and late >= base * (1 + fraction)


def pain_test(assessment: Event, baseline: Event, fraction: Fraction) -> bool | None:
    """The 30 % test of one assessment against the baseline: True, False, or None if it cannot apply."""
    tests = [
        improved(baseline.get("pain_nrs"), assessment.get("pain_nrs"), fraction),
        improved(baseline.get("function_peg"), assessment.get("function_peg"), fraction),
    ]
    applicable = [result for result in tests if result is not None]
    return all(applicable) if applicable else None


def statement_stands(stated: Event, baseline: Event | None) -> bool:
    """A relief statement carrying its own `pain_nrs` counts only if that score is below the baseline's
    (at or above it contradicts the statement; without a baseline it cannot be checked: clinical-rules §7)."""
    own = stated.get("pain_nrs")
    if own is None:
        return True
    base = None if baseline is None else baseline.get("pain_nrs")
    return base is not None and own < base


class _State(NamedTuple):
    relief: bool
    failing: bool  # the latest pain assessment fails the 30 % test (an inapplicable test is no failure)
    sources: tuple[str, ...]


class ReliefTimeline:
    """Meaningful relief as a step function of time, with the episode baseline: the earliest pain assessment
    at or after `baseline_from` (surgery + 28 days; None: the earliest assessment)."""

    def __init__(self, events: Iterable[Event], fraction: Fraction, baseline_from: int | None):
        self.baseline: Event | None = None
        self.latest_assessment: Event | None = None
        self._times: list[int] = []
        self._states: list[_State] = []
        self._build(events, fraction, baseline_from)

    def _build(self, events: Iterable[Event], fraction: Fraction, baseline_from: int | None) -> None:
        stated: Event | None = None
        failed_after_stated = False
        result: bool | None = None
        for event in events:
            if event.type == "pain_assessment":
                if self.baseline is None and (baseline_from is None or event.t >= baseline_from):
                    self.baseline = event
                self.latest_assessment = event
                result = None if self.baseline is None else pain_test(event, self.baseline, fraction)
                if stated is not None and event.t > stated.t and result is False:
                    failed_after_stated = True
            elif event.type in _STATED_RELIEF_TYPES and "meaningful_relief" in event.data:
                stated, failed_after_stated = event, False
            else:
                continue
            by_statement = (
                stated is not None
                and stated.get("meaningful_relief") is True
                and not failed_after_stated
                and statement_stands(stated, self.baseline)
            )
            self._record(event.t, result, stated if by_statement else None)

    def _record(self, t: int, result: bool | None, statement: Event | None) -> None:
        sources: tuple[str, ...] = ()
        if result is True and self.latest_assessment is not None and self.baseline is not None:
            sources = (self.baseline.id, self.latest_assessment.id)
        elif statement is not None:
            sources = (statement.id,)
        if self._times and self._times[-1] == t:  # keep only the state after the whole instant
            self._times.pop(), self._states.pop()
        self._times.append(t)
        self._states.append(_State(result is True or statement is not None, result is False, sources))

    def _state(self, t: int) -> _State:
        index = bisect_right(self._times, t)
        return self._states[index - 1] if index else _State(False, False, ())

    def at(self, t: int) -> bool:
        return self._state(t).relief

    def sources_at(self, t: int) -> tuple[str, ...]:
        return self._state(t).sources

    def first_without_relief(self, t: int) -> int | None:
        """The first instant >= t at which there is no meaningful relief (None if relief holds on)."""
        return self._first(t, lambda state: not state.relief)

    def first_failing(self, t: int) -> int | None:
        """The first instant >= t at which the latest assessment fails the 30 % test and no relief holds."""
        return self._first(t, lambda state: state.failing and not state.relief)

    def _first(self, t: int, keep: Callable[[_State], bool]) -> int | None:
        if keep(self._state(t)):
            return t
        for index in range(bisect_right(self._times, t), len(self._times)):
            if keep(self._states[index]):
                return self._times[index]
        return None
