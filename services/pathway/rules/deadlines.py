"""The complete deadline set (pathway-spec §3): every instance since the first fact, with its status.

Each rule yields drafts (kind, due, satisfying event, cancelling event). The earlier of the two decides;
at the same instant satisfied wins. Drafts colliding on (kind, due_at) merge: pending over satisfied over
cancelled, fact ids united.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .catalog import DEADLINE_RULES
from .context import Context
from .model import DAY_US, Deadline, from_micros
from .timeline import Event, Instants, is_red_flag_exam

_STATUS_RANK = {"pending": 2, "satisfied": 1, "cancelled": 0}


class Resolution(NamedTuple):
    t: int
    fact_id: str | None


class Draft(NamedTuple):
    kind: str
    due: int
    source_ids: tuple[str, ...]
    satisfied: Resolution | None = None
    cancelled: Resolution | None = None

    @property
    def status(self) -> str:
        sat, can = self.satisfied, self.cancelled
        if sat is not None and (can is None or sat.t <= can.t):
            return "satisfied"
        return "pending" if can is None else "cancelled"


def resolved_by(event: Event | None) -> Resolution | None:
    return None if event is None else Resolution(event.t, event.id)


def merge(drafts: Iterable[Draft]) -> list[Deadline]:
    merged: dict[tuple[str, int], list] = {}  # (kind, due) -> [status, fact ids]
    for draft in drafts:
        status = draft.status
        decided = draft.satisfied if status == "satisfied" else draft.cancelled
        entry = merged.get((draft.kind, draft.due))
        if entry is None:
            entry = merged[draft.kind, draft.due] = [status, set(draft.source_ids)]
        else:
            if _STATUS_RANK[status] > _STATUS_RANK[entry[0]]:
                entry[0] = status
            entry[1].update(draft.source_ids)
        if decided is not None and decided.fact_id:
            entry[1].add(decided.fact_id)
    return [_deadline(kind, due, status, ids) for (kind, due), (status, ids) in sorted(merged.items(), key=_by_due)]


def _by_due(item: tuple[tuple[str, int], list]) -> tuple[int, str]:
    return item[0][1], item[0][0]


def _deadline(kind: str, due: int, status: str, ids: set[str]) -> Deadline:
    rule = DEADLINE_RULES[kind]
    fact_ids = tuple(sorted(ids)) if len(ids) > 1 else tuple(ids)
    return Deadline(kind, from_micros(due), status, rule.text, rule.citation, fact_ids)


def urgent_referrals(ctx: Context) -> Iterator[Draft]:
    """Each red-flag exam: satisfied by a later surgery, repeat surgery or clear exam."""
    exams = ctx.timeline.of_type("neuro_exam")
    resolvers = Instants(
        sorted(
            ctx.timeline.of_type("surgery")
            + ctx.events("procedure", kind="repeat_surgery")
            + [e for e in exams if not is_red_flag_exam(e)],
            key=lambda e: e.t,
        )
    )
    for exam in exams:
        if is_red_flag_exam(exam):
            yield Draft(
                "urgent_surgical_referral",
                exam.t,
                (exam.id,),
                satisfied=resolved_by(resolvers.first_after(exam.t)),
            )


def episode_deadlines(ctx: Context) -> Iterator[Draft]:
    """initial_evaluation_overdue and first_line_review, per surgical episode."""
    for stages in ctx.episodes:
        episode = stages.episode
        ended = None if episode.end is None else Resolution(episode.end, None)
        first_line, second_line = stages.entries[1], stages.entries[2]
        yield Draft(
            "initial_evaluation_overdue",
            episode.start + ctx.params.initial_evaluation_days * DAY_US,
            episode.start_ids,
            satisfied=_at(first_line, ctx.now),
            cancelled=ended,
        )
        pt = stages.first_active_pt
        if pt is not None:
            outcome = Instants(e for e in episode.events if e.type == "pain_assessment").first_at_or_after(
                pt.t + ctx.params.pt_assessment_after_days * DAY_US
            )
            satisfied = min(
                (r for r in (resolved_by(outcome), _at(second_line, ctx.now)) if r is not None),
                key=lambda r: r.t,
                default=None,
            )
            yield Draft(
                "first_line_review",
                pt.t + ctx.params.first_line_trial_days * DAY_US,
                (pt.id,),
                satisfied=satisfied,
                cancelled=ended,
            )


def _at(t: int | None, now: int) -> Resolution | None:
    """A time-driven resolution (stage entry) counts only once it has happened."""
    return None if t is None or t > now else Resolution(t, None)


def pt_deadlines(ctx: Context) -> Iterator[Draft]:
    pt = ctx.events("therapy", kind="physical_therapy")
    started = Instants(e for e in pt if e.get("status") == "started")
    followed = Instants(e for e in pt if e.get("status") in ("progress", "completed"))
    stopped = Instants(e for e in pt if e.get("status") == "stopped")
    for event in pt:
        status = event.get("status")
        if status == "referred":
            yield Draft(
                "pt_start_check",
                event.t + ctx.params.pt_start_check_days * DAY_US,
                (event.id,),
                satisfied=resolved_by(started.first_at_or_after(event.t)),
                cancelled=resolved_by(stopped.first_after(event.t)),
            )
        elif status in ("started", "progress"):
            yield Draft(
                "pt_follow_up",
                event.t + ctx.params.pt_follow_up_days * DAY_US,
                (event.id,),
                satisfied=resolved_by(followed.first_after(event.t)),
                cancelled=resolved_by(stopped.first_after(event.t)),
            )


def procedure_follow_ups(ctx: Context) -> Iterator[Draft]:
    assessments = Instants(ctx.timeline.of_type("pain_assessment"))
    for procedure in ctx.timeline.of_type("procedure"):
        after = procedure.t + ctx.params.procedure_assessment_after_days * DAY_US
        yield Draft(
            "procedure_follow_up",
            procedure.t + ctx.params.procedure_follow_up_days * DAY_US,
            (procedure.id,),
            satisfied=resolved_by(assessments.first_at_or_after(after)),
        )
