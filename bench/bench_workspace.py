"""The coordinators' workspace pages for an organisation of 10,000 patients (issue 12, acceptance 5).

    .venv/bin/python bench/bench_workspace.py [--backend sqlite|pg] [--patients 10000] [--requests 200]

Seeding is direct and fast, not through the API: a few story templates (the same kinds of story as
tests/acceptance/test_workspace_overview.py) are evaluated once by the real engine; each patient gets one
template's facts as patient_update rows, that template's assessment body as its newest assessment row (the
fact ids inside the body are the template's, which no page reads), and one reminder per pending deadline
(past ones due, future ones scheduled). Rows go in with SQLAlchemy Core executemany in batches.

Then `carepath notifications` runs in a separate process (rate limits off) and this process is
the client: it signs in as a coordinator (a server-side session, its cookie) and measures, sequentially, p50/p95/max of
  worklist       GET /worklist (its first page of 50)
  worklist filtered  GET /worklist with filters (FILTERED: overdue page 5, stage + kind, mine, one patient)
  patient cold   GET /worklist/patients/{id} for distinct patients (first view: the chart is drawn)
  patient warm   the same patients again (the chart of that assessment version is cached)
  overview       GET /worklist/overview (the organisation's figures reused for 30 s: the setting
                 CAREPATH_OVERVIEW_CACHE_SECONDS), and "overview (no cache)" from a second server with it 0
PostgreSQL uses a throw-away database (shared.testing.fresh_postgres_database, CAREPATH_TEST_PG_URL);
SQLite a file in a temporary folder. Figures: docs/performance.md, "Coordinators' workspace pages".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.pathway.rules import evaluate
from services.pathway.rules.model import Fact
from services.pathway.rules.params import Params
from shared.db.schema import upgrade
from shared.db.tables import Assessment, Patient, PatientUpdate, Reminder
from shared.db.tables.core import summary_columns
from shared.testing import fresh_postgres_database, sqlite_url

ORG = "bench"
FILTERED = [  # views a coordinator uses: a later page of the overdue, a stage and kind, their own work, an MRN
    "/worklist?overdue=1&page=5",
    "/worklist?stage=first_line&kind=pdmp_review",
    "/worklist?assignee=unassigned&kind=opioid_review_4w&page=3",
    "/worklist?assignee=me",
    "/worklist?patient=p-004321",
]
NOW = datetime.now(UTC).replace(microsecond=0)


def _u(type_: str, days_ago: float, **data: Any) -> tuple[str, datetime, dict[str, Any]]:
    return (type_, NOW - timedelta(days=days_ago), data)


BASE = [
    _u("surgery", 200, procedure="laminectomy"),
    _u("pain_assessment", 150, pain_nrs=8, function_peg=7, distribution="radicular"),
    _u("imaging", 150, modality="mri", findings=[], indication="persistent pain"),
    _u("neuro_exam", 150, progressive_deficit=False),
]
NSAID = _u("medication", 140, drug_class="nsaid", action="started")
TEMPLATES = [
    [BASE[0], _u("pain_assessment", 150, pain_nrs=6, distribution="axial")],
    BASE,
    [*BASE, NSAID, _u("therapy", 40, kind="physical_therapy", status="referred")],
    [*BASE, NSAID, _u("therapy", 130, kind="physical_therapy", status="started", modality="active"),
     _u("pain_assessment", 60, pain_nrs=8, function_peg=7, distribution="radicular")],
    [*BASE, NSAID, _u("therapy", 10, kind="physical_therapy", status="referred"),
     _u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=90),
     _u("pain_assessment", 30, pain_nrs=6, function_peg=6, distribution="radicular")],
    [*BASE, NSAID, _u("medication", 20, drug_class="opioid_ir", action="started", mme_per_day=20),
     _u("medication", 20, drug_class="benzodiazepine", action="started")],
]  # fmt: skip


def _templates() -> list[tuple[list[tuple[str, datetime, dict[str, Any]]], dict[str, Any]]]:
    found = []
    for index, facts in enumerate(TEMPLATES):
        engine_facts = [Fact(f"t{index}-{n}", t, at, data) for n, (t, at, data) in enumerate(facts)]
        found.append((facts, evaluate(engine_facts, NOW, Params()).to_dict()))
    return found


def seed(url: str, patients: int) -> list[str]:
    started = time.monotonic()
    templates = _templates()
    engine = create_engine(url)
    ids = [f"p-{i:06d}" for i in range(patients)]
    batch = 1000
    with engine.begin() as connection:
        for first in range(0, patients, batch):
            chunk = ids[first : first + batch]
            patient_rows, updates, assessments, reminders = [], [], [], []
            for number, patient_id in enumerate(chunk, start=first):
                facts, body = templates[number % len(templates)]
                patient_rows.append({"id": patient_id, "org": ORG, "external_id": f"B{number:06d}", "created_at": NOW})
                for n, (type_, at, data) in enumerate(facts):
                    updates.append({"id": f"{patient_id}-u{n}", "patient_id": patient_id, "org": ORG, "type": type_,
                                    "occurred_at": at, "occurred_at_text": at.isoformat(), "data": data,
                                    "received_at": at})  # fmt: skip
                codes, mme = summary_columns(body)
                assessments.append({"patient_id": patient_id, "org": ORG, "seq": 1, "stage": body["stage"],
                                    "rule_set_version": body["rule_set_version"], "profile": body["profile"],
                                    "params_digest": body["params_digest"], "updates_evaluated": len(facts),
                                    "evaluated_at": NOW, "body": body, "changes": {"first": True},
                                    "trigger": "update", "flag_codes": codes, "current_mme": mme, "is_current": True})  # fmt: skip
                for k, deadline in enumerate(d for d in body["deadlines"] if d["status"] == "pending"):
                    due = datetime.fromisoformat(deadline["due_at"])
                    reminders.append({"id": f"{patient_id}-r{k}", "org": ORG, "patient_id": patient_id,
                                      "kind": deadline["kind"], "due_at": due,
                                      "status": "due" if due <= NOW else "scheduled", "text": deadline["text"],
                                      "citation": deadline["citation"], "sources": deadline.get("sources"),
                                      "fact_ids": [], "origin": "pathway", "next_action_at": due,
                                      "created_at": NOW, "updated_at": NOW, "version": 1})  # fmt: skip
            connection.execute(insert(Patient.__table__), patient_rows)  # type: ignore[attr-defined]
            connection.execute(insert(PatientUpdate.__table__), updates)  # type: ignore[attr-defined]
            connection.execute(insert(Assessment.__table__), assessments)  # type: ignore[attr-defined]
            if reminders:
                connection.execute(insert(Reminder.__table__), reminders)  # type: ignore[attr-defined]
    # What autovacuum / a routine ANALYZE would have done by the time an organisation has grown to this size.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE")
    engine.dispose()
    print(f"seeded {patients} patients in {time.monotonic() - started:.1f} s")
    return ids


@contextlib.contextmanager
def database(backend: str) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as var_dir:
        if backend == "pg":
            with fresh_postgres_database() as url:
                yield url, var_dir
        else:
            yield sqlite_url(Path(var_dir)), var_dir


@contextlib.contextmanager
def server(env: dict[str, str], port: int) -> Iterator[str]:
    process = subprocess.Popen(  # the notifications service as deployed: `carepath notifications`
        [str(Path(sys.executable).with_name("carepath")), "notifications"],
        env={**env, "CAREPATH_NOTIFICATIONS_PORT": str(port), "CAREPATH_LOG_LEVEL": "WARNING"}, cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def measure(client: httpx.Client, paths: list[str]) -> dict[str, float]:
    times = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return {
        "n": len(times),
        "p50": statistics.median(times),
        "p95": times[max(0, int(len(times) * 0.95) - 1)],
        "max": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=18741)
    args = parser.parse_args()
    with database(args.backend) as (url, var_dir):
        env = {**os.environ, "CAREPATH_DATABASE_URL": url, "CAREPATH_VAR_DIR": var_dir,
               "CAREPATH_RATE_LIMITS_ENABLED": "false", "CAREPATH_BROKER_URL": "filesystem://"}  # fmt: skip
        os.environ.update(env)
        from shared import sessions
        from shared.settings import get_settings

        get_settings.cache_clear()
        upgrade(url)
        ids = seed(url, args.patients)
        # A signed-in coordinator: the server-side session the sign-in opens (its cookie is all the browser has).
        signed_in = sessions.start(get_settings(), ORG, "coordinator", "bench-coordinator", "token")
        cookies = {sessions.COOKIE: signed_in.secret}
        sample = random.Random(12).sample(ids, min(args.requests, len(ids)))
        with (
            server(env, args.port) as base,
            httpx.Client(base_url=base, cookies=cookies, timeout=60) as client,
        ):
            measure(client, ["/worklist/overview", "/worklist", f"/worklist/patients/{ids[0]}"])  # warm-up
            results = {
                "worklist": measure(client, ["/worklist"] * max(20, args.requests // 4)),
                "worklist filtered": measure(client, [*FILTERED] * max(5, args.requests // 20)),
                "patient cold": measure(client, [f"/worklist/patients/{p}" for p in sample]),
                "patient warm": measure(client, [f"/worklist/patients/{p}" for p in sample]),
                "overview": measure(client, ["/worklist/overview"] * max(20, args.requests // 4)),
            }
        uncached = {**env, "CAREPATH_OVERVIEW_CACHE_SECONDS": "0"}
        with (
            server(uncached, args.port + 1) as base,
            httpx.Client(base_url=base, cookies=cookies, timeout=60) as client,
        ):
            measure(client, ["/worklist/overview"])
            results["overview (no cache)"] = measure(client, ["/worklist/overview"] * max(20, args.requests // 4))
    print(f"backend {args.backend}, {args.patients} patients, sequential requests (ms):")
    for name, r in results.items():
        print(f"  {name:19s} n={r['n']:4d}  p50 {r['p50']:7.1f}  p95 {r['p95']:7.1f}  max {r['max']:7.1f}")


if __name__ == "__main__":
    main()
