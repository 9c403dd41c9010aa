"""The population overview's read model, aggregated in SQL: patients per stage (each patient's newest
assessment), reminders on the worklist and overdue per kind, and the care-gap lists (docs/clinical-rules.md,
"Care gaps": each read from what the engine already computed — the newest assessment's flags, stage and
current MME, or the reminders that mirror its deadlines — never re-derived here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import col

from services.notifications.web import wording
from services.notifications.web import worklist as wl
from shared.db.tables import Assessment, Patient, Reminder
from shared.db.tables.reminders import ACTIVE_STATUSES, ORIGIN_RULE_CHANGE
from shared.db.uow import UnitOfWork

GAP_LIST_LIMIT = 50  # rows shown per list (the count is always the full count)
OPIOID_REVIEW_KINDS = ("opioid_review_4w", "opioid_review_dose_change", "opioid_review_periodic")
HIGH_MME = 50


@dataclass(frozen=True)
class CareGap:
    code: str
    title: str
    definition: str


CARE_GAPS = (
    CareGap(
        "opioid_risk_without_naloxone",
        "On opioids at ≥ 50 MME or with a benzodiazepine, without naloxone",
        "The newest assessment raises naloxone_indicated (on opioids, naloxone not offered in this opioid "
        "episode) and either its current MME is 50 or more or it raises opioid_benzodiazepine_coprescription.",
    ),
    CareGap(
        "pt_referral_not_started",
        "Physical therapy referral not started after 4 weeks",
        "The newest assessment raises pt_not_started (a PT referral 28 days or more ago with no start since "
        "and not withdrawn).",
    ),
    CareGap(
        "first_line_stalled",
        "First-line treatment stalled",
        "Stage first line, and the newest assessment raises active_pt_not_started or non_opioid_not_started "
        "(14 days into first line with no PT arranged or no non-opioid analgesic).",
    ),
    CareGap(
        "opioid_review_overdue",
        "Opioid review overdue",
        "An open reminder (scheduled, due, acknowledged or snoozed) of a 4-week, dose-change or periodic "
        "opioid review whose due time has passed.",
    ),
)


@dataclass(frozen=True)
class GapPatient:
    patient_id: str
    mrn: str
    stage_label: str


@dataclass(frozen=True)
class GapList:
    gap: CareGap
    count: int
    patients: tuple[GapPatient, ...]


@dataclass(frozen=True)
class KindCount:
    kind: str
    label: str
    on_worklist: int
    overdue: int


@dataclass(frozen=True)
class Overview:
    computed_at: datetime
    patients: int
    per_stage: tuple[tuple[str, str, int], ...]  # (stage or "", label, count); "" = not evaluated yet
    per_kind: tuple[KindCount, ...]
    gaps: tuple[GapList, ...]


def _newest() -> ColumnElement[bool]:
    """The assessment row is its patient's newest (`is_current`, kept by the table's insert listener)."""
    return col(Assessment.is_current).is_(True)


def _has(code: str) -> ColumnElement[bool]:
    return col(Assessment.flag_codes).like(f"% {code} %")


def _gap_condition(code: str) -> ColumnElement[bool]:
    if code == "opioid_risk_without_naloxone":
        return and_(
            _has("naloxone_indicated"),
            or_(col(Assessment.current_mme) >= HIGH_MME, _has("opioid_benzodiazepine_coprescription")),
        )
    if code == "pt_referral_not_started":
        return _has("pt_not_started")
    return and_(
        col(Assessment.stage) == "first_line", or_(_has("active_pt_not_started"), _has("non_opioid_not_started"))
    )


def _assessment_gap(uow: UnitOfWork, org: str, gap: CareGap) -> GapList:
    joined = (
        select(col(Patient.id), col(Patient.external_id), col(Assessment.stage))
        .join(Patient, col(Patient.id) == col(Assessment.patient_id))
        .where(col(Assessment.org) == org, _gap_condition(gap.code), _newest())
    )
    return _gap_list(uow, gap, joined)


def _review_gap(uow: UnitOfWork, org: str, gap: CareGap, now: datetime) -> GapList:
    # A semi-join (IN, not a join on DISTINCT patient ids): both backends then read the overdue reviews from
    # the reminder table's covering (org, status, due_at, kind, …) index instead of scanning it by patient.
    overdue = select(col(Reminder.patient_id)).where(
        col(Reminder.org) == org,
        col(Reminder.status).in_(ACTIVE_STATUSES),
        col(Reminder.due_at) < now,
        col(Reminder.kind).in_(OPIOID_REVIEW_KINDS),
    )
    joined = (
        select(col(Patient.id), col(Patient.external_id), col(Assessment.stage))
        .select_from(Patient)
        .outerjoin(Assessment, and_(col(Assessment.patient_id) == col(Patient.id), _newest()))
        .where(col(Patient.org) == org, col(Patient.id).in_(overdue))
    )
    return _gap_list(uow, gap, joined)


def _gap_list(uow: UnitOfWork, gap: CareGap, joined: Select[str, str, str]) -> GapList:
    count = uow.session.execute(select(func.count()).select_from(joined.subquery())).scalar_one()
    rows = uow.session.execute(joined.order_by(col(Patient.external_id)).limit(GAP_LIST_LIMIT)).all()
    patients = tuple(GapPatient(pid, mrn, wording.stage_label(stage)) for pid, mrn, stage in rows)
    return GapList(gap, int(count), patients)


def _per_stage(uow: UnitOfWork, org: str) -> tuple[int, list[tuple[str, str, int]]]:
    query = (
        select(col(Assessment.stage), func.count())
        .where(col(Assessment.org) == org, _newest())
        .group_by(col(Assessment.stage))
    )
    counts = {stage: int(n) for stage, n in uow.session.execute(query).all()}
    total = int(uow.session.execute(select(func.count()).where(col(Patient.org) == org)).scalar_one())
    ordered = [s for s in wording.STAGE_ORDER if s in counts] + sorted(set(counts) - set(wording.STAGE_ORDER))
    rows = [(stage, wording.stage_label(stage), counts[stage]) for stage in ordered]
    unevaluated = total - sum(counts.values())
    if unevaluated:
        rows.append(("", wording.stage_label(None), unevaluated))
    return total, rows


def _per_kind(uow: UnitOfWork, org: str, now: datetime) -> list[KindCount]:
    """As the worklist counts them: on the worklist = due, acknowledged or snoozed; overdue = due before now, or
    for a reminder a rule change created already past, escalated (services/notifications/web/worklist.py)."""
    overdue = case(
        (col(Reminder.origin) == ORIGIN_RULE_CHANGE, case((col(Reminder.escalated_at).is_not(None), 1), else_=0)),
        (col(Reminder.due_at) < now, 1),
        else_=0,
    )
    query = (
        select(col(Reminder.kind), func.count(), func.coalesce(func.sum(overdue), literal(0)))
        .where(col(Reminder.org) == org, col(Reminder.status).in_(list(wl.WORKLIST_STATUSES)))
        .group_by(col(Reminder.kind))
        .order_by(col(Reminder.kind))
    )
    return [
        KindCount(kind, wl.kind_label(kind), int(n), int(late)) for kind, n, late in uow.session.execute(query).all()
    ]


def load(uow: UnitOfWork, org: str, now: datetime) -> Overview:
    total, per_stage = _per_stage(uow, org)
    gaps = tuple(
        _review_gap(uow, org, gap, now) if gap.code == "opioid_review_overdue" else _assessment_gap(uow, org, gap)
        for gap in CARE_GAPS
    )
    return Overview(now, total, tuple(per_stage), tuple(_per_kind(uow, org, now)), gaps)


_CACHE: dict[tuple[str, str], Overview] = {}
_CACHE_LOCK = threading.Lock()


def cached(uow: UnitOfWork, database: str, org: str, now: datetime, seconds: float) -> Overview:
    """The organisation's overview, reused for `seconds` within this process (the page shows `computed_at`):
    the SQL aggregation over a whole organisation is the page's cost, and a coordinator reloading it, or many
    coordinators of one organisation, need not repeat it."""
    key = (database, org)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
    if found is not None and timedelta(0) <= now - found.computed_at < timedelta(seconds=seconds):
        return found
    fresh = load(uow, org, now)
    with _CACHE_LOCK:
        _CACHE[key] = fresh
    return fresh
