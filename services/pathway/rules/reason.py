"""Why the patient is in this stage (pathway-spec §6 `stage_reason`) and the pain trend (`pain`)."""

from __future__ import annotations

from collections.abc import Sequence

from .context import Context
from .courses import NON_OPIOID_ANALGESICS, Course
from .hits import words
from .model import DAY_US, PainScore, PainTrend, StageReason, from_micros
from .stage import INTERVENTIONAL, EpisodeStages, is_initial_imaging, is_psych_therapy_start
from .timeline import Event

DRUGS = {
    "nsaid": "an NSAID",
    "gabapentinoid": "a gabapentinoid",
    "sodium_channel_anticonvulsant": "a sodium-channel anticonvulsant",
    "tca": "a TCA",
    "snri": "an SNRI",
}


_SIGNS = {"progressive_deficit": "a progressive deficit", "cauda_equina_signs": "cauda equina signs"}
_THERAPIES = {
    "cbt": "CBT",
    "biofeedback": "biofeedback",
    "relaxation_training": "relaxation training",
    "supportive_psychotherapy": "supportive psychotherapy",
}


def day(t: int) -> str:
    return from_micros(t).date().isoformat()


def _label(value: object) -> str:
    return str(value).replace("_", " ")


def _score(event: Event) -> str:
    return f"pain {event.get('pain_nrs')}/10 on {day(event.t)}"


def pain_trend(ctx: Context) -> PainTrend:
    current = ctx.current
    if current is None:
        return PainTrend(None, None, None)
    baseline, latest = current.relief.baseline, current.relief.latest_assessment
    change = None
    if baseline is not None and latest is not None and baseline.get("pain_nrs"):
        base = baseline.get("pain_nrs")
        change = round((latest.get("pain_nrs") - base) * 100 / base, 1)
    return PainTrend(_pain_score(baseline), _pain_score(latest), change)


def _pain_score(event: Event | None) -> PainScore | None:
    if event is None:
        return None
    return PainScore(event.get("pain_nrs"), event.get("function_peg"), from_micros(event.t), event.id)


def stage_reason(ctx: Context) -> StageReason:
    current = ctx.current
    if current is None:
        return StageReason(
            "In initial evaluation: no updates yet; the pathway starts with MRI/CT, a neuro exam and a pain and "
            "facet assessment.",
            (),
        )
    pathway, since = current.stage_at(ctx.now)
    text, ids = {
        "initial_evaluation": _initial,
        "first_line": _first_line,
        "second_line": _second_line,
        "refractory": _refractory,
    }[pathway](ctx, current, since)
    if ctx.urgent is not None:
        return _urgent(ctx, f"{text[0].lower()}{text[1:]}", ids)
    return StageReason(text, ids)


def _urgent(ctx: Context, underneath: str, ids: tuple[str, ...]) -> StageReason:
    assert ctx.urgent is not None
    exams = [e for e in ctx.timeline.of_type("neuro_exam") if e.id in ctx.urgent.exam_ids]
    latest = exams[-1]
    signs = [label for name, label in _SIGNS.items() if latest.get(name)]
    text = (
        f"In urgent surgical evaluation since {day(ctx.urgent.since)}: the neuro exam on {day(latest.t)} shows "
        f"{words(signs)} and no surgical evaluation is recorded since (underneath, {underneath.rstrip('.')})."
    )
    return StageReason(text, tuple(dict.fromkeys(ctx.urgent.exam_ids + ids)))


def _parts(events: Sequence[Event]) -> list[tuple[str, Event | None]]:
    return [
        ("MRI or CT", next((e for e in events if is_initial_imaging(e)), None)),
        ("a neuro exam", next((e for e in events if e.type == "neuro_exam"), None)),
        ("a pain assessment", next((e for e in events if e.type == "pain_assessment"), None)),
    ]


def _initial(ctx: Context, current: EpisodeStages, since: int) -> tuple[str, tuple[str, ...]]:
    missing = [name for name, event in _parts(current.episode.events) if event is None]
    verb = "is" if len(missing) == 1 else "are"
    text = f"In initial evaluation since {day(since)}: {words(missing)} {verb} still missing in this episode."
    return text, current.episode.start_ids


def _first_line(ctx: Context, current: EpisodeStages, since: int) -> tuple[str, tuple[str, ...]]:
    done = [(name, e) for name, e in _parts(current.episode.events) if e is not None]
    listed = ", ".join(f"{_done_name(name, e)} on {day(e.t)}" for name, e in done)
    gap, gap_ids = _second_line_gap(ctx, current)
    text = f"In first line since {day(since)}: initial evaluation complete ({listed}); {gap}."
    return text, tuple(e.id for _, e in done) + gap_ids


def _done_name(name: str, event: Event) -> str:
    return str(event.get("modality")).upper() if event.type == "imaging" else name.removeprefix("a ")


def _non_opioid(ctx: Context, current: EpisodeStages) -> Course | None:
    episode = current.episode
    return next(
        (
            c
            for c in ctx.courses
            if c.drug_class in NON_OPIOID_ANALGESICS and (c.open_at(episode.start) or episode.contains(c.start))
        ),
        None,
    )


def _second_line_gap(ctx: Context, current: EpisodeStages) -> tuple[str, tuple[str, ...]]:
    """What keeps the patient in first line, in the order the criteria are checked."""
    params, pt = ctx.params, current.first_active_pt
    if pt is None:
        return "no active physical therapy started yet", ()
    if ctx.now < pt.t + params.first_line_trial_days * DAY_US:
        return f"active PT since {day(pt.t)}, under {params.first_line_trial_days} days so far", (pt.id,)
    if _non_opioid(ctx, current) is None:
        return f"active PT since {day(pt.t)} but no non-opioid analgesic course", (pt.id,)
    latest, baseline = current.relief.latest_assessment, current.relief.baseline
    if latest is None or latest.t < pt.t + params.pt_assessment_after_days * DAY_US:
        days = params.pt_assessment_after_days
        return f"no pain assessment {days} days or more into PT (since {day(pt.t)}) yet", (pt.id,)
    if baseline is None:
        return "no baseline pain assessment yet (acute post-operative scores do not count)", (latest.id,)
    if current.relief.at(ctx.now):
        return f"meaningful relief: {_score(latest)} against a baseline of {baseline.get('pain_nrs')}/10", (latest.id,)
    return f"{_score(latest)} against a baseline of {baseline.get('pain_nrs')}/10: no 30 % test applies", (
        baseline.id,
        latest.id,
    )


def _second_line(ctx: Context, current: EpisodeStages, since: int) -> tuple[str, tuple[str, ...]]:
    pt, drug = current.first_active_pt, _non_opioid(ctx, current)
    outcome = _latest_assessment_at(current, since)
    baseline = current.relief.baseline
    ids = [e.id for e in (pt, outcome, baseline) if e is not None] + ([drug.start_id] if drug else [])
    parts = [f"active PT since {day(pt.t)}" if pt else "active PT"]
    parts.append(DRUGS.get(drug.drug_class, "a non-opioid analgesic") if drug else "a non-opioid analgesic")
    result = ""
    if outcome is not None and baseline is not None:
        result = f", {_score(outcome)} against a baseline of {baseline.get('pain_nrs')}/10, not a 30 % improvement"
    text = f"In second line since {day(since)}: {' and '.join(parts)}{result}."
    return text, tuple(dict.fromkeys(ids))


def _latest_assessment_at(current: EpisodeStages, t: int) -> Event | None:
    found = [e for e in current.episode.events if e.type == "pain_assessment" and e.t <= t]
    return found[-1] if found else None


def _refractory(ctx: Context, current: EpisodeStages, since: int) -> tuple[str, tuple[str, ...]]:
    events = current.episode.events
    psych = next((e for e in events if is_psych_therapy_start(e)), None)
    proc = next((e for e in events if e.type == "procedure" and e.get("kind") in INTERVENTIONAL), None)
    second = current.entries[2]
    parts = [f"in second line since {day(second)}" if second is not None else "in second line"]
    if psych is not None:
        parts.append(f"{_THERAPIES.get(str(psych.get('kind')), 'psychological therapy')} since {day(psych.t)}")
    if proc is not None:
        parts.append(f"{_label(proc.get('kind'))} on {day(proc.t)}")
    text = f"Refractory since {day(since)}: {', '.join(parts)}, and no meaningful relief."
    return text, tuple(e.id for e in (psych, proc) if e is not None)
