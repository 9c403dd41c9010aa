"""Baseline and meaningful relief over time within one surgical episode (pathway-spec §1).

Meaningful relief (default 30 %, CDC22/IMMPACT) at t: the latest pain assessment at or before t is at
least 30 % below the episode baseline (pain, and PEG where both carry it); or the latest opioid review /
therapy update stating `meaningful_relief` says true and no later pain assessment fails the 30 % test.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from fractions import Fraction

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


def pain_test(assessment: Event, baseline: Event, fraction: Fraction) -> bool | None:
    """The 30 % test of one assessment against the baseline: True, False, or None if it cannot apply."""
    tests = [
        improved(baseline.get("pain_nrs"), assessment.get("pain_nrs"), fraction),
        improved(baseline.get("function_peg"), assessment.get("function_peg"), fraction),
    ]
    applicable = [result for result in tests if result is not None]
    return all(applicable) if applicable else None


class ReliefTimeline:
    """Meaningful relief as a step function of time, with the episode baseline."""

    def __init__(self, events: Iterable[Event], fraction: Fraction):
        self.baseline: Event | None = None
        self.latest_assessment: Event | None = None
        self._times: list[int] = []
        self._values: list[bool] = []
        self._sources: list[tuple[str, ...]] = []
        self._build(events, fraction)

    def _build(self, events: Iterable[Event], fraction: Fraction) -> None:
        stated: Event | None = None
        failed_after_stated = False
        latest_result: bool | None = None
        for event in events:
            if event.type == "pain_assessment":
                self.baseline = self.baseline or event
                self.latest_assessment = event
                latest_result = pain_test(event, self.baseline, fraction)
                if stated is not None and event.t > stated.t and latest_result is False:
                    failed_after_stated = True
            elif event.type in _STATED_RELIEF_TYPES and "meaningful_relief" in event.data:
                stated, failed_after_stated = event, False
            else:
                continue
            self._record(event.t, latest_result is True, stated, failed_after_stated)

    def _record(self, t: int, by_assessment: bool, stated: Event | None, failed_after_stated: bool) -> None:
        by_statement = stated is not None and stated.get("meaningful_relief") is True and not failed_after_stated
        sources: tuple[str, ...] = ()
        if by_assessment and self.latest_assessment is not None and self.baseline is not None:
            sources = (self.baseline.id, self.latest_assessment.id)
        elif by_statement and stated is not None:
            sources = (stated.id,)
        if self._times and self._times[-1] == t:  # keep only the state after the whole instant
            self._times.pop(), self._values.pop(), self._sources.pop()
        self._times.append(t)
        self._values.append(by_assessment or by_statement)
        self._sources.append(sources)

    def at(self, t: int) -> bool:
        index = bisect_right(self._times, t)
        return self._values[index - 1] if index else False

    def sources_at(self, t: int) -> tuple[str, ...]:
        index = bisect_right(self._times, t)
        return self._sources[index - 1] if index else ()

    def first_without_relief(self, t: int) -> int | None:
        """The first instant >= t at which there is no meaningful relief (None if relief holds on)."""
        if not self.at(t):
            return t
        for index in range(bisect_right(self._times, t), len(self._times)):
            if not self._values[index]:
                return self._times[index]
        return None
