"""Re-evaluation runs: when the rule set or an organisation's parameters change, re-evaluate every patient
of that organisation through the pathway worker, in paced batches, resumable after a crash.

- A run walks the organisation's patients in id order. One transaction per batch holds the batch's
  `carepath.pathway.reevaluation_requested` outbox rows *and* the run's new cursor, so a run killed at any
  instant resumes after the last committed batch: nobody enqueued twice, nobody skipped. Event ids are
  derived from (run, patient), so even a replayed batch could not queue a second copy (unique outbox key).
- Live traffic keeps priority: a run enqueues at most `rate` patients per second (batches of about one
  second's worth) and waits while the pathway backlog (unfinished outbox rows) is above `max_backlog`;
  the worker takes events FIFO, so an update posted meanwhile waits behind at most about a second of them.
- The newest run of an organisation that was not superseded records what was last applied to it (rule set
  version, params digest); `ensure_current_rules` compares that with what is current and starts or
  resumes runs. Starting runs is serialised (PostgreSQL advisory lock; SQLite's write lock) so a
  concurrent configuration change and startup check cannot both start one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlmodel import col

from services.pathway.mapping import org_params
from services.pathway.rules import RULE_SET_VERSION
from shared.clock import utcnow
from shared.db.tables import Assessment, OrgConfig, OutboxMessage, Patient, ReevaluationRun, table_of
from shared.db.tables.reevaluation import RUN_DONE, RUN_RUNNING, RUN_SUPERSEDED
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_REEVALUATION_REQUESTED, SOURCE_OPS, Event
from shared.messaging.routing import PATHWAY
from shared.observability.metrics import beat
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.pathway.reevaluation")

DEFAULT_RATE = 50.0  # patients per second per run
MAX_BATCH = 100
DEFAULT_MAX_BACKLOG = 1000  # unfinished pathway outbox rows above which runs wait
IDLE_SECONDS = 1.0
ENSURE_EVERY_SECONDS = 60.0
_EVENT_NAMESPACE = uuid.UUID("6f1c7d1e-3b52-4c36-9d0e-8a4f2b7c9e10")
_ADVISORY_KEY = 0x63617265  # "care": serialises starting/superseding runs on PostgreSQL


@dataclass(frozen=True)
class Target:
    rule_set_version: str
    profile: str
    params_digest: str


@dataclass(frozen=True)
class Batch:
    enqueued: int
    finished: bool
    busy: bool = False  # another process holds this run right now


def current_target(uow: UnitOfWork, org: str) -> Target:
    params = org_params(uow, org)
    return Target(RULE_SET_VERSION, params.profile, params.digest())


def serialise_run_changes(uow: UnitOfWork) -> None:
    """Take the lock under which runs are started or superseded (SQLite: BEGIN IMMEDIATE already holds it)."""
    if not uow.is_sqlite:
        uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})


def latest_run(uow: UnitOfWork, org: str) -> ReevaluationRun | None:
    query = (
        select(ReevaluationRun)
        .where(col(ReevaluationRun.org) == org, col(ReevaluationRun.status) != RUN_SUPERSEDED)
        .order_by(col(ReevaluationRun.created_at).desc(), col(ReevaluationRun.id).desc())
        .limit(1)
    )
    return uow.session.execute(query).scalar_one_or_none()


def _applies(run: ReevaluationRun, target: Target) -> bool:
    return (run.rule_set_version, run.params_digest) == (target.rule_set_version, target.params_digest)


def _new_run(
    uow: UnitOfWork, org: str, target: Target, reason: str, *, rate: float, requested_by: str, status: str = RUN_RUNNING
) -> ReevaluationRun:
    now = utcnow()
    count = select(func.count()).select_from(Patient).where(col(Patient.org) == org)
    total = uow.session.execute(count).scalar_one()
    run = ReevaluationRun(
        org=org,
        reason=reason,
        rule_set_version=target.rule_set_version,
        profile=target.profile,
        params_digest=target.params_digest,
        status=status,
        total=total if status == RUN_RUNNING else 0,
        rate=rate,
        requested_by=requested_by,
        created_at=now,
        updated_at=now,
        finished_at=None if status == RUN_RUNNING else now,
    )
    uow.session.add(run)
    uow.session.flush()
    return run


def start_run(
    uow: UnitOfWork, org: str, reason: str, *, rate: float = DEFAULT_RATE, requested_by: str = "system"
) -> ReevaluationRun:
    """Start a run for `org` against its current rules and parameters, or return the unfinished run that
    already does exactly that (resume). An unfinished run for other parameters is superseded: the new run
    covers every patient again. Call under `serialise_run_changes`; the caller's unit of work commits."""
    target = current_target(uow, org)
    previous = latest_run(uow, org)
    if previous is not None and previous.status == RUN_RUNNING:
        if _applies(previous, target):
            return previous
        previous.status, previous.updated_at = RUN_SUPERSEDED, utcnow()
        uow.session.add(previous)
    run = _new_run(uow, org, target, reason, rate=rate, requested_by=requested_by)
    log.info("re-evaluation run %s started (reason=%s, patients=%s)", run.id, reason, run.total)
    return run


def known_orgs(uow: UnitOfWork) -> list[str]:
    with_patients = set(uow.session.execute(select(col(Patient.org)).distinct()).scalars())
    configured = set(uow.session.execute(select(col(OrgConfig.org))).scalars())
    return sorted(with_patients | configured)


def _assessed_with_other_rules(uow: UnitOfWork, org: str, target: Target) -> bool:
    query = (
        select(col(Assessment.id))
        .where(
            col(Assessment.org) == org,
            (col(Assessment.rule_set_version) != target.rule_set_version)
            | (Assessment.params_digest != target.params_digest),
        )
        .limit(1)
    )
    return uow.session.execute(query).first() is not None


def _ensure_org(uow: UnitOfWork, org: str) -> str | None:
    """The id of the run that brings `org` up to date, or None if it already is."""
    target = current_target(uow, org)
    previous = latest_run(uow, org)
    if previous is None:
        # Nothing recorded yet: re-evaluate only if some stored assessment used other rules or parameters.
        if not _assessed_with_other_rules(uow, org, target):
            _new_run(uow, org, target, "baseline", rate=DEFAULT_RATE, requested_by="system", status=RUN_DONE)
            return None
        return start_run(uow, org, "rule_set_changed").id
    if _applies(previous, target):
        return previous.id if previous.status == RUN_RUNNING else None
    reason = "rule_set_changed" if previous.rule_set_version != target.rule_set_version else "params_changed"
    return start_run(uow, org, reason, rate=previous.rate).id


def ensure_current_rules(settings: Settings | None = None) -> list[str]:
    """Start (or resume) a run for every organisation whose stored rule set version or params digest differs
    from the current one; returns the ids of the runs now due to be driven (unfinished ones included).
    An organisation whose stored configuration no longer validates is logged and skipped."""
    run_ids: list[str] = []
    with UnitOfWork(settings) as uow:
        serialise_run_changes(uow)
        for org in known_orgs(uow):
            try:
                run_id = _ensure_org(uow, org)
            except ValueError:
                log.error(
                    "pathway configuration of an organisation no longer validates; fix it with "
                    "`carepath config set` (org skipped)",
                    exc_info=True,
                )
                continue
            if run_id is not None:
                run_ids.append(run_id)
        uow.commit()
    return run_ids


def batch_size(rate: float) -> int:
    """About one second's worth of patients, at most MAX_BATCH."""
    return max(1, min(MAX_BATCH, math.ceil(rate)))


def pause_after(enqueued: int, rate: float, elapsed: float) -> float:
    """Seconds to wait after a batch so the run stays at or below `rate` patients per second."""
    return max(0.0, enqueued / rate - elapsed) if rate > 0 else 0.0


def _lock_run(uow: UnitOfWork, run_id: str) -> ReevaluationRun | None:
    query = select(ReevaluationRun).where(col(ReevaluationRun.id) == run_id)
    if not uow.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    return uow.session.execute(query).scalar_one_or_none()


def _next_patients(uow: UnitOfWork, run: ReevaluationRun, limit: int) -> list[str]:
    query = select(col(Patient.id)).where(col(Patient.org) == run.org).order_by(col(Patient.id)).limit(limit)
    if run.cursor is not None:
        query = query.where(col(Patient.id) > run.cursor)
    return list(uow.session.execute(query).scalars())


def reevaluation_event(run: ReevaluationRun, patient_id: str) -> Event:
    return Event(
        id=str(uuid.uuid5(_EVENT_NAMESPACE, f"{run.id}:{patient_id}")),
        type=PATHWAY_REEVALUATION_REQUESTED,
        source=SOURCE_OPS,
        subject=patient_id,
        data={"patient_id": patient_id, "org": run.org, "reason": "reevaluation"},
    )


def advance_run(run_id: str, settings: Settings | None = None, limit: int | None = None) -> Batch:
    """Enqueue the run's next batch and move its cursor, in one transaction."""
    with UnitOfWork(settings) as uow:
        run = _lock_run(uow, run_id)
        if run is None:
            exists = uow.session.get(ReevaluationRun, run_id) is not None
            return Batch(0, finished=not exists, busy=exists)
        if run.status != RUN_RUNNING:
            return Batch(0, finished=True)
        size = limit or batch_size(run.rate)
        patient_ids = _next_patients(uow, run, size)
        uow.publish_many(reevaluation_event(run, patient_id) for patient_id in patient_ids)
        now = utcnow()
        run.cursor = patient_ids[-1] if patient_ids else run.cursor
        run.enqueued += len(patient_ids)
        run.updated_at = now
        if len(patient_ids) < size:
            run.status, run.finished_at = RUN_DONE, now
        uow.session.add(run)
        uow.commit()
        return Batch(len(patient_ids), finished=run.status == RUN_DONE)


def pathway_backlog(settings: Settings | None = None, cap: int = DEFAULT_MAX_BACKLOG) -> int:
    """Unfinished outbox rows for the pathway worker, counted up to `cap` + 1 (cheap)."""
    table = table_of(OutboxMessage)
    pending = select(table.c.id).where(table.c.consumer == PATHWAY, table.c.done_at.is_(None)).limit(cap + 1)
    with UnitOfWork(settings, read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(pending.subquery())).scalar_one())


def unfinished_runs(settings: Settings | None = None) -> list[tuple[str, float]]:
    """(id, rate) of the running runs, oldest first."""
    query = (
        select(col(ReevaluationRun.id), col(ReevaluationRun.rate))
        .where(col(ReevaluationRun.status) == RUN_RUNNING)
        .order_by(col(ReevaluationRun.created_at), col(ReevaluationRun.id))
    )
    with UnitOfWork(settings, read_only=True) as uow:
        return [(row.id, row.rate) for row in uow.session.execute(query)]


def _wait(stop: threading.Event, seconds: float) -> None:
    """Pace a run, beating the loop's heartbeat meanwhile: a slow rate is not a stuck loop."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        beat("rule-change-reevaluation")
        stop.wait(min(left, 5.0))


def drive_once(
    stop: threading.Event, runs: Sequence[tuple[str, float]], settings: Settings, max_backlog: int = DEFAULT_MAX_BACKLOG
) -> int:
    """One batch of each run in turn, paced by each run's rate; returns how many patients were enqueued."""
    total = 0
    for run_id, rate in runs:
        if stop.is_set():
            break
        if max_backlog > 0 and pathway_backlog(settings, max_backlog) > max_backlog:
            _wait(stop, IDLE_SECONDS)  # the worker is behind: live updates first
            break
        started = time.monotonic()
        batch = advance_run(run_id, settings)
        total += batch.enqueued
        elapsed = time.monotonic() - started
        _wait(stop, IDLE_SECONDS / 4 if batch.busy else pause_after(batch.enqueued, rate, elapsed))
    return total


def drive_runs(
    stop: threading.Event,
    run_ids: Sequence[str] | None = None,
    settings: Settings | None = None,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
) -> int:
    """Drive runs (the given ones, or all unfinished) until they finish or `stop` is set (`carepath
    reevaluate` in the foreground). Returns how many patients were enqueued."""
    settings = settings or get_settings()
    wanted = set(run_ids) if run_ids is not None else None
    enqueued = 0
    while not stop.is_set():
        runs = [run for run in unfinished_runs(settings) if wanted is None or run[0] in wanted]
        if not runs:
            break
        enqueued += drive_once(stop, runs, settings, max_backlog)
    return enqueued


def run_reevaluations(stop: threading.Event, settings: Settings | None = None) -> None:
    """Scheduler loop: check the rules and parameters of every organisation (at start, then every
    ENSURE_EVERY_SECONDS) and advance unfinished runs batch by batch at their rate until `stop` is set."""
    settings = settings or get_settings()
    next_check = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_check:
                ensure_current_rules(settings)
                next_check = time.monotonic() + ENSURE_EVERY_SECONDS
            beat("rule-change-reevaluation")
            runs = unfinished_runs(settings)
            if not runs or drive_once(stop, runs, settings) == 0:
                stop.wait(IDLE_SECONDS)
        except Exception:
            log.exception("re-evaluation pass failed; retrying")
            stop.wait(IDLE_SECONDS)
