"""The patient page's read model: one patient of the organisation with the newest stored assessment (stage,
reason, flags in plain words with their sources, deadlines), its history, the patient's reminders with their
transitions, and the timeline chart.

The notifications service does not import the pathway service (docs/architecture.md): the assessment is read
from the shared `assessment` rows, whose body the engine wrote with every citation already resolved to its
full source (services/pathway/rules/sources.py, the one catalogue). What only the engine can compute from the
facts — the MME per day over time, and a citation without stored sources — comes through the `PathwayReadings`
port that the composition root plugs in (carepath/apps.py; docs/decisions.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlmodel import col

from services.notifications.web import charts, wording
from services.notifications.web import worklist as wl
from shared.clock import as_utc
from shared.db.tables import Assessment, Patient, PatientUpdate, Reminder, ReminderTransition
from shared.db.uow import UnitOfWork

HISTORY_ROWS = 100
CHART_TYPES = ("pain_assessment", "surgery", "procedure", "therapy", "medication")


class PathwayReadings(Protocol):
    """What the page needs computed by the pathway's rules (plugged in by the composition root)."""

    def mme_steps(
        self, medications: Sequence[tuple[str, datetime, dict[str, Any]]]
    ) -> list[tuple[datetime, float | None]]:
        """(instant, MME per day from then on; 0 off opioids, None when on opioids of unknown dose) at every
        medication instant, from (fact id, occurred_at, data) of the medication facts."""
        ...

    def resolve_sources(self, citation: str) -> list[dict[str, Any]]:
        """The citation's codes resolved to their full sources [{code, title, url}]."""
        ...


class _NoReadings:
    def mme_steps(
        self, medications: Sequence[tuple[str, datetime, dict[str, Any]]]
    ) -> list[tuple[datetime, float | None]]:
        return []

    def resolve_sources(self, citation: str) -> list[dict[str, Any]]:
        return [
            {"code": code.strip(), "title": code.strip(), "url": None} for code in citation.split(";") if code.strip()
        ]


_readings: PathwayReadings = _NoReadings()


def use_readings(readings: PathwayReadings) -> None:
    global _readings
    _readings = readings


@dataclass(frozen=True)
class FlagView:
    code: str
    words: str
    recommendation: str
    sources: tuple[wl.Source, ...]


@dataclass(frozen=True)
class HistoryItem:
    seq: int
    evaluated_at: datetime
    trigger: str
    rule_set_version: str
    stage_from: str | None
    stage_to: str | None
    first: bool
    flags_added: tuple[str, ...]
    flags_removed: tuple[str, ...]
    deadlines_added: tuple[str, ...]
    deadlines_withdrawn: tuple[str, ...]
    deadline_moves: tuple[str, ...]
    rule_set_from: str | None
    rule_set_to: str | None


@dataclass(frozen=True)
class TransitionView:
    at: datetime
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    comment: str | None
    until: str | None


@dataclass(frozen=True)
class ReminderView:
    row: wl.Row
    transitions: tuple[TransitionView, ...]


@dataclass(frozen=True)
class DeadlineView:
    kind_label: str
    due_at: datetime
    status: str
    text: str


@dataclass
class PatientPage:
    patient: Patient
    stage: str | None
    stage_label: str
    stage_since: datetime | None
    stage_reason: str
    rule_set_version: str | None
    evaluated_at: datetime | None
    current_mme: float | None
    baseline: dict[str, Any] | None
    flags: list[FlagView] = field(default_factory=list)
    deadlines: list[DeadlineView] = field(default_factory=list)
    history: list[HistoryItem] = field(default_factory=list)
    reminders: list[ReminderView] = field(default_factory=list)
    pain_points: list[charts.PainPoint] = field(default_factory=list)
    mme: list[tuple[datetime, float | None]] = field(default_factory=list)
    markers: list[charts.Marker] = field(default_factory=list)
    chart: charts.Chart | None = None


def _instant(value: Any) -> datetime | None:
    return as_utc(datetime.fromisoformat(value)) if isinstance(value, str) and value else None


def _sources(recommendation: dict[str, Any]) -> tuple[wl.Source, ...]:
    stored = recommendation.get("sources")
    if not isinstance(stored, list):
        stored = _readings.resolve_sources(str(recommendation.get("citation") or ""))
    return wl.sources(stored)


def flag_views(body: dict[str, Any]) -> list[FlagView]:
    recommendations = {str(r.get("code")): r for r in body.get("recommendations", []) if isinstance(r, dict)}
    views = []
    for flag in body.get("flags", []):
        code = str(flag.get("code") if isinstance(flag, dict) else flag)
        rec = recommendations.get(code, {})
        views.append(FlagView(code, wording.flag_words(code), str(rec.get("text") or ""), _sources(rec)))
    return views


def _keys(items: Any) -> tuple[str, ...]:
    return tuple(f"{wl.kind_label(str(i.get('kind')))} due {str(i.get('due_at'))[:10]}" for i in items or [])


def history_item(row: Assessment) -> HistoryItem:
    changes = row.changes or {}
    stage = changes.get("stage") or {}
    flags = changes.get("flags") or {}
    rule_set = changes.get("rule_set_version") or {}
    moves = tuple(
        f"{wl.kind_label(str(d.get('kind')))} due {str(d.get('due_at'))[:10]}: {d.get('from') or 'new'} → {d.get('to') or 'gone'}"
        for d in changes.get("deadlines", [])
    )
    return HistoryItem(
        seq=row.seq,
        evaluated_at=as_utc(row.evaluated_at),
        trigger=row.trigger,
        rule_set_version=row.rule_set_version,
        stage_from=stage.get("from"),
        stage_to=stage.get("to"),
        first=bool(changes.get("first")),
        flags_added=tuple(flags.get("added", [])),
        flags_removed=tuple(flags.get("removed", [])),
        deadlines_added=_keys(changes.get("deadlines_added")),
        deadlines_withdrawn=_keys(changes.get("deadlines_withdrawn")),
        deadline_moves=moves,
        rule_set_from=rule_set.get("from"),
        rule_set_to=rule_set.get("to"),
    )


def _transition(row: ReminderTransition) -> TransitionView:
    until = (row.details or {}).get("until") or (row.details or {}).get("snoozed_until")
    return TransitionView(
        at=as_utc(row.at),
        from_status=row.from_status,
        to_status=row.to_status,
        actor=row.actor,
        reason=row.reason,
        comment=row.comment,
        until=str(until) if until else None,
    )


def _reminders(uow: UnitOfWork, patient: Patient, now: datetime) -> list[ReminderView]:
    reminders = list(
        uow.session.execute(
            select(Reminder).where(col(Reminder.patient_id) == patient.id, col(Reminder.org) == patient.org)
        ).scalars()
    )
    ids = [r.id for r in reminders]
    transitions: dict[str, list[TransitionView]] = {}
    if ids:
        query = (
            select(ReminderTransition)
            .where(col(ReminderTransition.reminder_id).in_(ids))
            .order_by(col(ReminderTransition.at), col(ReminderTransition.id))
        )
        for row in uow.session.execute(query).scalars():
            transitions.setdefault(row.reminder_id, []).append(_transition(row))
    rows = [wl.row_of(r, patient.external_id, now) for r in reminders]
    active = [row for row in rows if row.status in wl.WORKLIST_STATUSES]
    active.sort(key=lambda row: wl.order_key(row.shown_due_at or row.due_at, row.kind, now))
    others = sorted(
        (row for row in rows if row.status not in wl.WORKLIST_STATUSES), key=lambda r: r.due_at, reverse=True
    )
    return [ReminderView(row, tuple(transitions.get(row.id, ()))) for row in active + others]


def _chart_facts(page: PatientPage, updates: Sequence[PatientUpdate], now: datetime) -> None:
    medications = []
    for update in updates:
        at = as_utc(update.occurred_at)
        if at > now:
            continue
        data = update.data or {}
        if update.type == "pain_assessment" and isinstance(data.get("pain_nrs"), int):
            peg = data.get("function_peg")
            page.pain_points.append(
                charts.PainPoint(at, data["pain_nrs"], peg if isinstance(peg, int | float) else None)
            )
        elif update.type == "surgery":
            page.markers.append(charts.Marker(at, "surgery", f"Surgery: {data.get('procedure', '')}".replace("_", " ")))
        elif update.type == "procedure":
            page.markers.append(charts.Marker(at, "procedure", str(data.get("kind", "procedure")).replace("_", " ")))
        elif update.type == "therapy" and data.get("status") in ("started", "stopped", "completed"):
            label = f"{data.get('kind', 'therapy')} {data.get('status')}".replace("_", " ")
            page.markers.append(charts.Marker(at, "therapy", label))
        elif update.type == "medication":
            medications.append((update.id, at, data))
            if data.get("action") in ("started", "stopped"):
                label = f"{data.get('drug_class', 'medication')} {data.get('action')}".replace("_", " ")
                page.markers.append(charts.Marker(at, "medication", label))
    page.mme = _readings.mme_steps(medications)


# The chart of one assessment version (patient, seq, facts seen) is drawn once: matplotlib takes a few hundred
# milliseconds on a busy machine, the page must answer in < 300 ms at p95 (docs/performance.md).
_CHARTS: OrderedDict[tuple[str, int, int, datetime], charts.Chart] = OrderedDict()
_CHARTS_LOCK = threading.Lock()
CHART_CACHE_SIZE = 2048


def _chart(page: PatientPage, seq: int, facts: int, now: datetime) -> charts.Chart:
    key = (page.patient.id, seq, facts, now.replace(hour=0, minute=0, second=0, microsecond=0))
    with _CHARTS_LOCK:
        if key in _CHARTS:
            _CHARTS.move_to_end(key)
            return _CHARTS[key]
    baseline = page.baseline.get("pain_nrs") if page.baseline else None
    chart = charts.timeline(
        "timeline", page.pain_points, baseline if isinstance(baseline, int) else None, page.mme, page.markers, key[3]
    )
    with _CHARTS_LOCK:
        _CHARTS[key] = chart
        while len(_CHARTS) > CHART_CACHE_SIZE:
            _CHARTS.popitem(last=False)
    return chart


def load(uow: UnitOfWork, patient: Patient, now: datetime) -> PatientPage:
    history_rows = list(
        uow.session.execute(
            select(Assessment)
            .where(col(Assessment.patient_id) == patient.id)
            .order_by(col(Assessment.seq).desc())
            .limit(HISTORY_ROWS)
        ).scalars()
    )
    latest = history_rows[0] if history_rows else None
    body: dict[str, Any] = latest.body if latest else {}
    stage = latest.stage if latest else None
    page = PatientPage(
        patient=patient,
        stage=stage,
        stage_label=wording.stage_label(stage),
        stage_since=_instant(body.get("stage_since")),
        stage_reason=str((body.get("stage_reason") or {}).get("text") or ""),
        rule_set_version=latest.rule_set_version if latest else None,
        evaluated_at=as_utc(latest.evaluated_at) if latest else None,
        current_mme=body.get("current_mme"),
        baseline=(body.get("pain") or {}).get("baseline"),
        flags=flag_views(body),
        history=[history_item(row) for row in history_rows],
        reminders=_reminders(uow, patient, now),
    )
    page.deadlines = sorted(
        (
            DeadlineView(wl.kind_label(str(d["kind"])), at, str(d.get("status")), str(d.get("text") or ""))
            for d in body.get("deadlines", [])
            if d.get("status") == "pending" and (at := _instant(d.get("due_at"))) is not None
        ),
        key=lambda d: d.due_at,
    )
    updates = list(
        uow.session.execute(
            select(PatientUpdate)
            .where(col(PatientUpdate.patient_id) == patient.id, col(PatientUpdate.type).in_(CHART_TYPES))
            .order_by(col(PatientUpdate.occurred_at), col(PatientUpdate.id))
        ).scalars()
    )
    _chart_facts(page, updates, now)
    page.chart = _chart(page, latest.seq if latest else 0, len(updates), now)
    uow.session.expunge(patient)  # the page reads it after the unit of work ends
    return page
