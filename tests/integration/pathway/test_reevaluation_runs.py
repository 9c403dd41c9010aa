"""Re-evaluation runs: resumable after a SIGKILL, never enqueuing a patient twice, started by themselves when
the rules or an organisation's parameters change, superseded by a newer change, safe with two drivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from services.pathway.config import replace_config
from services.pathway.reevaluation import (
    advance_run,
    batch_size,
    drive_runs,
    ensure_current_rules,
    pause_after,
    run_reevaluations,
)
from services.pathway.rules import RULE_SET_VERSION, params_for
from shared.clock import utcnow
from shared.db.tables import OrgConfig, OutboxMessage, ReevaluationRun
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_REEVALUATION_REQUESTED
from shared.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _run(settings: Settings, run_id: str) -> ReevaluationRun:
    with UnitOfWork(settings, read_only=True) as uow:
        run = uow.session.get(ReevaluationRun, run_id)
        assert run is not None
        uow.session.expunge(run)
        return run


def _runs(settings: Settings, org: str) -> list[ReevaluationRun]:
    with UnitOfWork(settings, read_only=True) as uow:
        query = select(ReevaluationRun).where(ReevaluationRun.org == org).order_by(ReevaluationRun.created_at)
        runs = list(uow.session.execute(query).scalars())
        uow.session.expunge_all()
        return runs


def _queued(settings: Settings) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        query = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.event_type == PATHWAY_REEVALUATION_REQUESTED)
        )
        return int(uow.session.execute(query).scalar_one())


def _set_overrides(settings: Settings, org: str, overrides: dict[str, object], *, with_run: bool = True) -> str | None:
    with UnitOfWork(settings) as uow:
        if with_run:
            run_id = replace_config(uow, org, "asra-2020", overrides, requested_by="test").run_id
        else:  # changed behind the service's back (restored backup, manual SQL): no run recorded
            uow.session.merge(OrgConfig(org=org, profile="asra-2020", overrides=overrides, updated_at=utcnow()))
            run_id = None
        uow.commit()
    return run_id


def _cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "carepath.cli", "reevaluate", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_reevaluate_killed_mid_run_resumes_without_duplicates_or_gaps(settings: Settings, kit) -> None:
    patients = set(kit.patients("org-a", 240))
    kit.patients("org-b", 5)
    _set_overrides(settings, "org-a", {"pt_follow_up_days": 21})
    [run] = _runs(settings, "org-a")

    first = _cli("--org", "org-a", "--rate", "40", "--max-backlog", "0")  # 40 per batch, one batch a second
    try:
        deadline = time.monotonic() + 60
        while _run(settings, run.id).enqueued < 40:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    killed = _run(settings, run.id)
    assert killed.status == "running" and 40 <= killed.enqueued < 240
    assert _queued(settings) == killed.enqueued  # the cursor moved with exactly the rows committed with it

    second = _cli("--org", "org-a", "--rate", "1000", "--max-backlog", "0")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()
    assert [r.id for r in _runs(settings, "org-a")] == [run.id]  # resumed, not restarted
    finished = _run(settings, run.id)
    assert (finished.status, finished.enqueued) == ("done", 240)
    assert kit.reevaluation_events() == dict.fromkeys(patients, 1)

    assert kit.drain() == 240
    expected = params_for("asra-2020", {"pt_follow_up_days": 21}).digest()
    assert {kit.latest(p).params_digest for p in patients} == {expected}


def test_two_drivers_of_one_run_enqueue_each_patient_once(settings: Settings, kit) -> None:
    patients = kit.patients("org-a", 150, evaluate=False)
    _set_overrides(settings, "org-a", {"tolerance_days": 30})
    errors: list[BaseException] = []

    def driver() -> None:
        try:
            drive_runs(threading.Event(), settings=settings, max_backlog=0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=driver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert kit.reevaluation_events() == dict.fromkeys(patients, 1)


def test_ensure_current_rules_starts_resumes_and_records(settings: Settings, kit) -> None:
    kit.patients("org-a", 5)
    assert ensure_current_rules(settings) == []  # evaluated with the current rules: a baseline is recorded
    [baseline] = _runs(settings, "org-a")
    assert (baseline.status, baseline.reason, baseline.enqueued) == ("done", "baseline", 0)
    assert ensure_current_rules(settings) == [] and len(_runs(settings, "org-a")) == 1

    _set_overrides(settings, "org-a", {"tolerance_days": 30}, with_run=False)
    [started] = ensure_current_rules(settings)
    assert ensure_current_rules(settings) == [started]  # resumed, not duplicated
    assert _run(settings, started).reason == "params_changed"
    advance_run(started, settings, limit=2)
    assert ensure_current_rules(settings) == [started] and _run(settings, started).enqueued == 2
    drive_runs(threading.Event(), [started], settings, max_backlog=0)
    assert ensure_current_rules(settings) == []

    with UnitOfWork(settings) as uow:  # as if this run had applied an older rule set
        uow.session.execute(
            update(ReevaluationRun).where(ReevaluationRun.id == started).values(rule_set_version="lbp-postlam-2025.9")
        )
        uow.commit()
    [upgraded] = ensure_current_rules(settings)
    run = _run(settings, upgraded)
    assert (run.reason, run.rule_set_version, run.total) == ("rule_set_changed", RULE_SET_VERSION, 5)
    assert kit.reevaluation_events().total() == 5


def test_ensure_current_rules_reevaluates_an_org_assessed_with_other_parameters(settings: Settings, kit):
    patients = kit.patients("org-c", 3)
    kit.patients("org-d", 2)
    _set_overrides(settings, "org-c", {"scs_positive_percent": 60}, with_run=False)
    [run_id] = ensure_current_rules(settings)
    assert _run(settings, run_id).org == "org-c"
    assert [r.reason for r in _runs(settings, "org-d")] == ["baseline"]
    drive_runs(threading.Event(), settings=settings, max_backlog=0)
    kit.drain()
    expected = params_for("asra-2020", {"scs_positive_percent": 60}).digest()
    assert {kit.latest(p).params_digest for p in patients} == {expected}


def test_a_newer_change_supersedes_an_unfinished_run(settings: Settings, kit) -> None:
    patients = kit.patients("org-a", 6)
    first = _set_overrides(settings, "org-a", {"tolerance_days": 30})
    assert first is not None
    advance_run(first, settings, limit=4)
    second = _set_overrides(settings, "org-a", {"tolerance_days": 35})
    assert _run(settings, first).status == "superseded"
    assert drive_runs(threading.Event(), settings=settings, max_backlog=0) == 6
    events = kit.reevaluation_events()
    assert sum(events.values()) == 10 and all(events[p] in (1, 2) for p in patients)
    assert _run(settings, second).enqueued == 6  # type: ignore[arg-type]
    kit.drain()
    expected = params_for("asra-2020", {"tolerance_days": 35}).digest()
    assert {kit.latest(p).params_digest for p in patients} == {expected}


def test_scheduler_loop_applies_a_change_by_itself(settings: Settings, kit) -> None:
    patients = kit.patients("org-a", 8)
    _set_overrides(settings, "org-a", {"udt_interval_days": 180}, with_run=False)
    stop = threading.Event()
    loop = threading.Thread(target=run_reevaluations, args=(stop, settings))
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while kit.reevaluation_events().total() < 8:
            assert time.monotonic() < deadline and loop.is_alive()
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert kit.reevaluation_events() == dict.fromkeys(patients, 1)
    assert [r.status for r in _runs(settings, "org-a")] == ["done"]


def test_pacing_decisions() -> None:
    assert batch_size(50) == 50 and batch_size(0.5) == 1 and batch_size(10_000) == 100
    assert pause_after(50, 50.0, 0.2) == pytest.approx(0.8)
    assert pause_after(10, 50.0, 1.0) == 0.0
