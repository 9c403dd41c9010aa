"""The complete deadline set (pathway-spec §3): every instance since the first fact, with its status.

Each rule yields drafts (kind, due, satisfying event, cancelling event). The earlier of the two decides;
at the same instant satisfied wins. Drafts colliding on (kind, due_at) merge: pending over satisfied over
cancelled, fact ids united.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .catalog_deadlines import DEADLINE_RULES
from .context import Context
from .model import DAY_US, Deadline, from_micros
from .params import Params
from .stage import EpisodeStages
from .timeline import Event, Instants
from .urgent import referral_runs

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
    merged: dict[tuple[str, int], tuple[str, set[str]]] = {}  # (kind, due) -> (status, fact ids)
    for draft in drafts:
        status = draft.status
        decided = draft.satisfied if status == "satisfied" else draft.cancelled
        known = merged.get((draft.kind, draft.due))
        ids = set(draft.source_ids) if known is None else known[1] | set(draft.source_ids)
        if known is not None and _STATUS_RANK[known[0]] >= _STATUS_RANK[status]:
            status = known[0]
        if decided is not None and decided.fact_id:
            ids.add(decided.fact_id)
        merged[draft.kind, draft.due] = (status, ids)
    return [_deadline(kind, due, status, ids) for (kind, due), (status, ids) in sorted(merged.items(), key=_by_due)]


def _by_due(item: tuple[tuple[str, int], tuple[str, set[str]]]) -> tuple[int, str]:
    return item[0][1], item[0][0]


def _deadline(kind: str, due: int, status: str, ids: set[str]) -> Deadline:
    rule = DEADLINE_RULES[kind]
    fact_ids = tuple(sorted(ids)) if len(ids) > 1 else tuple(ids)
    return Deadline(kind, from_micros(due), status, rule.text, rule.citation, fact_ids)


def urgent_referrals(ctx: Context) -> Iterator[Draft]:
    """One referral per run of red-flag exams, satisfied only by a surgeon's evaluation, a surgery or a
    repeat surgery after its first exam (a later clear exam does not close it)."""
    for run in referral_runs(ctx.timeline):
        yield Draft("urgent_surgical_referral", run.due, run.exam_ids, satisfied=resolved_by(run.evaluated_by))


def _initial_evaluation_due(stages: EpisodeStages, params: Params) -> tuple[int, tuple[str, ...]] | None:
    """14 days after the later of surgery + 28 days and the episode's first other fact (None while the
    episode holds nothing but its surgery); without a surgery, 14 days after the earliest fact."""
    episode = stages.episode
    grace = params.initial_evaluation_days * DAY_US
    if episode.surgery is None:
        return episode.start + grace, episode.start_ids
    first = next((e for e in episode.events if e.type != "surgery"), None)
    if first is None:
        return None
    settled = episode.surgery + params.baseline_delay_days * DAY_US
    if settled >= first.t:
        return settled + grace, episode.start_ids
    return first.t + grace, (first.id,)


def episode_deadlines(ctx: Context) -> Iterator[Draft]:
    """initial_evaluation_overdue and first_line_review, per surgical episode."""
    for stages in ctx.episodes:
        episode = stages.episode
        ended = None if episode.end is None else Resolution(episode.end, None)
        first_line, second_line = stages.entries[1], stages.entries[2]
        due = _initial_evaluation_due(stages, ctx.params)
        if due is not None:
            yield Draft(
                "initial_evaluation_overdue", due[0], due[1], satisfied=_at(first_line, ctx.now), cancelled=ended
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


RESULT_PROCEDURES = frozenset({"medial_branch_block", "scs_trial"})  # their follow-up is their result


def follow_up_days(procedure: Event, params: Params) -> int | None:
    """The kind's follow-up delay in days; None for a block or trial that carries its result."""
    kind = procedure.get("kind")
    if kind in RESULT_PROCEDURES:
        return None if procedure.get("relief_percent") is not None else params.block_follow_up_days
    delays = {
        "epidural_steroid_injection": params.esi_follow_up_days,
        "radiofrequency_denervation": params.rfa_follow_up_days,
        "scs_implant": params.scs_implant_follow_up_days,
        "endoscopic_decompression": params.endoscopic_follow_up_days,
        "repeat_surgery": params.repeat_surgery_follow_up_days,
    }
    return delays.get(str(kind))


def procedure_follow_ups(ctx: Context) -> Iterator[Draft]:
    """Each procedure + its kind's delay; satisfied by a pain assessment at least delay / 2 (whole days,
    rounded down) after it, or for a block or trial by a later one of its kind carrying its result."""
    assessments = Instants(ctx.timeline.of_type("pain_assessment"))
    procedures = ctx.timeline.of_type("procedure")
    for procedure in procedures:
        days = follow_up_days(procedure, ctx.params)
        if days is None:
            continue
        resolutions = [resolved_by(assessments.first_at_or_after(procedure.t + (days // 2) * DAY_US))]
        if procedure.get("kind") in RESULT_PROCEDURES:
            result = next(
                (
                    e
                    for e in procedures
                    if e.t > procedure.t
                    and e.get("kind") == procedure.get("kind")
                    and e.get("relief_percent") is not None
                ),
                None,
            )
            resolutions.append(resolved_by(result))
        yield Draft(
            "procedure_follow_up",
            procedure.t + days * DAY_US,
            (procedure.id,),
            satisfied=min((r for r in resolutions if r is not None), key=lambda r: r.t, default=None),
        )
