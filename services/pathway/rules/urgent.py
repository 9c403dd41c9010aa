"""Red-flag neuro exams (pathway-spec §2.1, §3): the urgent stage and the urgent surgical referrals.

A red-flag exam is evaluated by a later `surgical_evaluation`, `surgery` or `procedure` repeat_surgery (all
facts, any episode); a later exam without the flags ends the urgent stage but does not close the referral
(a deficit that stops progressing still needs the surgeon). An instant with a red-flag exam counts as red.
"""

from __future__ import annotations

from dataclasses import dataclass

from .timeline import Event, Instants, Timeline, is_red_flag_exam


@dataclass(frozen=True)
class UrgentRun:
    since: int
    exam_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReferralRun:
    """Red-flag exams with no evaluation between them: one referral, due at the first exam."""

    due: int
    exam_ids: tuple[str, ...]
    evaluated_by: Event | None  # the first evaluation after the first exam, if any


def evaluations(timeline: Timeline) -> Instants:
    """Everything that evaluates a red flag: a surgeon's evaluation, a surgery or a repeat surgery."""
    events = (
        timeline.of_type("surgical_evaluation")
        + timeline.of_type("surgery")
        + timeline.where("procedure", "kind", "repeat_surgery")
    )
    return Instants(sorted(events, key=lambda e: e.t))


def _exam_instants(timeline: Timeline) -> list[tuple[int, bool, list[str]]]:
    """(instant, red, red exam ids) per instant with a neuro exam, in time order."""
    by_instant: dict[int, list[str]] = {}
    for exam in timeline.of_type("neuro_exam"):
        ids = by_instant.setdefault(exam.t, [])
        if is_red_flag_exam(exam):
            ids.append(exam.id)
    return [(t, bool(ids), ids) for t, ids in sorted(by_instant.items())]


def _evaluated_between(evals: Instants, after: int, until: int, inclusive: bool = True) -> bool:
    """An evaluation strictly after `after` and at or before `until` (strictly before if not inclusive)."""
    found = evals.first_after(after)
    return found is not None and (found.t <= until if inclusive else found.t < until)


def urgent_run(timeline: Timeline) -> UrgentRun | None:
    """The current unbroken run of red-flag exams, or None: the latest exam is clear or was evaluated."""
    return urgent_run_at(timeline, timeline.now)


def urgent_run_at(timeline: Timeline, t: int, evaluated_at_t: bool = True) -> UrgentRun | None:
    """The run at t; `evaluated_at_t` False ignores evaluations at t itself (the stage just as a repeat
    surgery starts: a surgery done for the red flag is done in the urgent stage)."""
    instants = [item for item in _exam_instants(timeline) if item[0] <= t]
    evals = evaluations(timeline)
    if not instants or not instants[-1][1] or _evaluated_between(evals, instants[-1][0], t, evaluated_at_t):
        return None
    since, ids = instants[-1][0], list(instants[-1][2])
    for previous in reversed(instants[:-1]):
        if not previous[1] or _evaluated_between(evals, previous[0], since):
            break
        since = previous[0]
        ids.extend(previous[2])
    return UrgentRun(since, tuple(sorted(ids)))


def is_urgent_at(timeline: Timeline, t: int, evaluated_at_t: bool = True) -> bool:
    return urgent_run_at(timeline, t, evaluated_at_t) is not None


def referral_runs(timeline: Timeline) -> list[ReferralRun]:
    """Every urgent referral: red-flag exams grouped into runs broken only by an evaluation."""
    evals = evaluations(timeline)
    runs: list[tuple[int, list[str]]] = []
    previous: int | None = None
    for t, red, ids in _exam_instants(timeline):
        if not red:
            continue
        if previous is None or _evaluated_between(evals, previous, t):
            runs.append((t, []))
        runs[-1][1].extend(ids)
        previous = t
    return [ReferralRun(due, tuple(sorted(ids)), evals.first_after(due)) for due, ids in runs]
