"""`carepath reevaluate --dry-run`: what re-evaluating every patient now would change, stored nowhere.

Each patient is evaluated in memory (the real engine, the organisation's parameters, one `now` for the whole
forecast) and compared with its latest stored assessment, exactly as the worker would compare them: stage
moves, flags gained and lost (per code), deadlines that would become reminders (and of those, how many are
already past due: delivered at once, marked as created by the rule change) and reminders that would be
cancelled. Nothing is written, not even a run row.

Paced and batched: patients are read in id order, one short read-only transaction per batch (their facts and
latest assessments), evaluated after it closed; `rate` caps patients per second so a forecast over a big
organisation never holds a transaction or crowds the database.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlmodel import col

from services.pathway.handler import deadline_moves, describe_changes
from services.pathway.mapping import org_params, to_fact
from services.pathway.rules import RULE_SET_VERSION, Fact, Params, evaluate
from shared.clock import as_utc, isoformat, utcnow
from shared.db.tables import Assessment, Patient, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings

BATCH = 100
DEFAULT_RATE = 1000.0  # patients per second: 100 000 patients in under two minutes, in 0.1 s slices


@dataclass
class OrgForecast:
    org: str
    patients: int = 0
    not_assessed: int = 0  # no stored assessment yet (the worker has not seen them)
    would_change: int = 0  # a new assessment would be stored
    stage_changes: int = 0
    stage_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    flags_gained: Counter[str] = field(default_factory=Counter)  # patients gaining each code
    flags_lost: Counter[str] = field(default_factory=Counter)
    reminders_scheduled: int = 0
    reminders_scheduled_past_due: int = 0
    reminders_cancelled: int = 0
    stored_rule_sets: Counter[str] = field(default_factory=Counter)

    def add(self, stored: dict[str, Any] | None, new: dict[str, Any], now: datetime) -> None:
        self.patients += 1
        if stored is None:
            self.not_assessed += 1
        else:
            self.stored_rule_sets[stored["rule_set_version"]] += 1
        changes = describe_changes(stored, new)
        if stored is not None and not changes:
            return
        self.would_change += 1
        stage = changes.get("stage")
        if stored is not None and stage:
            self.stage_changes += 1
            self.stage_moves[(stage["from"], stage["to"])] += 1
        self.flags_gained.update(changes.get("flags", {}).get("added", []))
        self.flags_lost.update(changes.get("flags", {}).get("removed", []))
        moves = deadline_moves(stored["deadlines"] if stored else [], new["deadlines"])
        self.reminders_scheduled += len(moves["added"])
        self.reminders_scheduled_past_due += sum(1 for d in moves["added"] if _instant(d["due_at"]) <= now)
        self.reminders_cancelled += len(moves["withdrawn"])

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "patients": self.patients,
            "not_assessed": self.not_assessed,
            "would_change": self.would_change,
            "stage_changes": self.stage_changes,
            "stage_moves": [
                {"from": before, "to": after, "patients": n} for (before, after), n in sorted(self.stage_moves.items())
            ],
            "flags_gained": dict(sorted(self.flags_gained.items())),
            "flags_lost": dict(sorted(self.flags_lost.items())),
            "reminders": {
                "scheduled": self.reminders_scheduled,
                "scheduled_past_due": self.reminders_scheduled_past_due,
                "cancelled": self.reminders_cancelled,
            },
            "stored_rule_sets": dict(sorted(self.stored_rule_sets.items())),
        }


def _instant(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class _Batch:
    ids: list[str]
    facts: dict[str, list[Fact]]
    stored: dict[str, dict[str, Any]]


def _read_batch(settings: Settings | None, org: str, after: str | None, limit: int) -> _Batch:
    """One short read-only transaction: the next patients, their facts and latest stored bodies."""
    patient_id, seq = col(Assessment.patient_id), col(Assessment.seq)
    with UnitOfWork(settings, read_only=True) as uow:
        query = select(col(Patient.id)).where(col(Patient.org) == org).order_by(col(Patient.id)).limit(limit)
        if after is not None:
            query = query.where(col(Patient.id) > after)
        ids = list(uow.session.execute(query).scalars())
        facts: dict[str, list[Fact]] = defaultdict(list)
        stored: dict[str, dict[str, Any]] = {}
        if ids:
            rows = uow.session.execute(select(PatientUpdate).where(col(PatientUpdate.patient_id).in_(ids))).scalars()
            for row in rows:
                facts[row.patient_id].append(to_fact(row))
            newest = (
                select(patient_id, func.max(seq).label("seq"))
                .where(patient_id.in_(ids))
                .group_by(patient_id)
                .subquery()
            )
            latest = select(patient_id, col(Assessment.body)).join(
                newest, and_(patient_id == newest.c.patient_id, seq == newest.c.seq)
            )
            stored = {row.patient_id: row.body for row in uow.session.execute(latest)}
        return _Batch(ids, dict(facts), stored)


def forecast_org(
    org: str,
    now: datetime,
    settings: Settings | None = None,
    *,
    rate: float | None = None,
    batch: int = BATCH,
    sleep: Callable[[float], None] = time.sleep,
) -> OrgForecast:
    """The forecast for one organisation, batch by batch (at most `rate` patients per second if given)."""
    with UnitOfWork(settings, read_only=True) as uow:
        params: Params = org_params(uow, org)
    result = OrgForecast(org)
    cursor: str | None = None
    while True:
        started = time.monotonic()
        chunk = _read_batch(settings, org, cursor, batch)
        for patient_id in chunk.ids:
            body = evaluate(chunk.facts.get(patient_id, []), now, params).to_dict()
            result.add(chunk.stored.get(patient_id), body, now)
        if len(chunk.ids) < batch:
            return result
        cursor = chunk.ids[-1]
        if rate:
            sleep(max(0.0, len(chunk.ids) / rate - (time.monotonic() - started)))


def forecast(
    orgs: list[str],
    settings: Settings | None = None,
    *,
    now: datetime | None = None,
    rate: float | None = DEFAULT_RATE,
) -> dict[str, Any]:
    """The dry run of `carepath reevaluate` for these organisations, as a JSON-ready dict."""
    now = now or utcnow()
    return {
        "dry_run": True,
        "rule_set_version": RULE_SET_VERSION,
        "evaluated_at": isoformat(now),
        "orgs": [forecast_org(org, now, settings, rate=rate).to_json() for org in orgs],
    }


_COLUMNS = (
    ("org", "org"),
    ("patients", "patients"),
    ("would change", "would_change"),
    ("stage changes", "stage_changes"),
    ("reminders scheduled", "scheduled"),
    ("of which past due", "scheduled_past_due"),
    ("reminders cancelled", "cancelled"),
)


def _cells(org: dict[str, Any]) -> list[str]:
    flat = {**org, **org["reminders"]}
    return [str(flat[key]) for _, key in _COLUMNS]


def render_table(report: dict[str, Any]) -> str:
    """The forecast as a plain-text table for an operator (counts and codes only, no patient ids)."""
    header = [title for title, _ in _COLUMNS]
    rows = [_cells(org) for org in report["orgs"]]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [
        f"Dry run against rule set {report['rule_set_version']} at {report['evaluated_at']} (nothing stored)",
        "",
        line(header),
        line(["-" * width for width in widths]),
        *(line(row) for row in rows),
    ]
    for org in report["orgs"]:
        out.extend(_details(org))
    return "\n".join(out) + "\n"


def _details(org: dict[str, Any]) -> list[str]:
    lines = [""]
    stored = ", ".join(f"{version}: {n}" for version, n in org["stored_rule_sets"].items()) or "none"
    lines.append(f"{org['org']}: stored assessments by rule set: {stored}; never assessed: {org['not_assessed']}")
    for move in org["stage_moves"]:
        lines.append(f"  stage {move['from']} -> {move['to']}: {move['patients']}")
    for title, key in (("flag gained", "flags_gained"), ("flag lost", "flags_lost")):
        for code, count in org[key].items():
            lines.append(f"  {title} {code}: {count}")
    return lines
