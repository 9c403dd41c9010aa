"""Reminder delivery lateness on PostgreSQL: N scheduler processes, R reminders due within W seconds.

    .venv/bin/python bench/bench_scheduler.py [--reminders 10000] [--window 60] [--schedulers 3]

Creates a throw-away database (shared.testing.fresh_postgres_database; admin URL from
CAREPATH_TEST_PG_URL), seeds the reminders, runs the schedulers as separate OS processes (run_scheduler,
default settings), waits until every reminder is delivered and reports the lateness percentiles of
  recorded:  delivered_at - due_at (what the reminder row says), and
  visible:   the outbox row's created_at - due_at (the delivery transaction commits right after).
--window 0 puts every reminder on the same instant (a burst: then lateness measures throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlmodel import col

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.notifications.scheduler import run_scheduler
from shared.clock import utcnow
from shared.db.schema import upgrade
from shared.db.tables import Patient, Reminder
from shared.testing import fresh_postgres_database

KINDS = 10


def seed(url: str, count: int, first_due: datetime, window: float) -> None:
    patients = -(-count // KINDS)
    step = window / count if count else 0
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(Patient.__table__),  # type: ignore[attr-defined]
            [
                {"id": f"p-{i:06d}", "org": "bench", "external_id": f"b{i}", "created_at": first_due}
                for i in range(patients)
            ],
        )
        rows = []
        for n in range(count):
            due = first_due + timedelta(seconds=n * step)
            rows.append(
                {
                    "id": f"r-{n:06d}",
                    "org": "bench",
                    "patient_id": f"p-{n // KINDS:06d}",
                    "kind": f"kind_{n % KINDS}",
                    "due_at": due,
                    "status": "scheduled",
                    "text": "t",
                    "citation": "G1",
                    "fact_ids": [],
                    "next_action_at": due,
                    "created_at": first_due,
                    "updated_at": first_due,
                    "version": 1,
                }
            )
        connection.execute(insert(Reminder.__table__), rows)  # type: ignore[attr-defined]
    engine.dispose()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": round(ordered[-1], 3)}


def lateness(url: str) -> tuple[list[float], list[float]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        recorded = (
            connection.execute(text("SELECT EXTRACT(EPOCH FROM delivered_at - due_at) FROM reminder")).scalars().all()
        )
        visible = (
            connection.execute(
                text(
                    "SELECT EXTRACT(EPOCH FROM o.created_at - r.due_at) FROM outbox_message o "
                    "JOIN reminder r ON r.id = o.envelope->'data'->>'reminder_id' "
                    "WHERE o.event_type = 'carepath.reminder.due'"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    return [float(v) for v in recorded], [float(v) for v in visible]


def lateness_profile(url: str) -> list[tuple[int, float, float]]:
    """(second since the first due_at, mean, max visible lateness): where the late ones are."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT floor(EXTRACT(EPOCH FROM r.due_at - min(r.due_at) OVER ())) AS s, "
                "EXTRACT(EPOCH FROM o.created_at - r.due_at) AS late FROM outbox_message o "
                "JOIN reminder r ON r.id = o.envelope->'data'->>'reminder_id'"
            )
        ).all()
    engine.dispose()
    buckets: dict[int, list[float]] = {}
    for second, late in rows:
        buckets.setdefault(int(second), []).append(float(late))
    return [(k, round(sum(v) / len(v), 3), round(max(v), 3)) for k, v in sorted(buckets.items())]


def child(worker_id: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    run_scheduler(stop, worker_id=worker_id)


def wait_delivered(url: str, count: int, timeout: float) -> None:
    engine = create_engine(url)
    delivered = select(func.count()).select_from(Reminder).where(col(Reminder.delivered_at).is_not(None))
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            if connection.execute(delivered).scalar_one() >= count:
                break
            connection.rollback()
            time.sleep(0.5)
        else:
            raise SystemExit("not every reminder was delivered in time")
    engine.dispose()


def start_schedulers(url: str, count: int) -> list[subprocess.Popen[str]]:
    """Started (and imported) before the reminders exist, so start-up time is not counted as lateness."""
    env = {
        **os.environ,
        "CAREPATH_DATABASE_URL": url,
        "CAREPATH_VAR_DIR": "/tmp/carepath-bench",
        "CAREPATH_LOG_LEVEL": "WARNING",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", f"bench-{i}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return processes


def run(args: argparse.Namespace) -> dict[str, object]:
    with fresh_postgres_database() as url:
        upgrade(url)
        processes = start_schedulers(url, args.schedulers)
        try:
            seed(url, args.reminders, utcnow() + timedelta(seconds=args.lead), args.window)
            wait_delivered(url, args.reminders, args.lead + args.window + 120)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)
        recorded, visible = lateness(url)
        profile = lateness_profile(url) if args.profile else None
    if profile:
        print(profile, file=sys.stderr)
    return {
        "reminders": args.reminders,
        "window_s": args.window,
        "schedulers": args.schedulers,
        "recorded": percentiles(recorded),
        "visible": percentiles(visible),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which due_at is spread")
    parser.add_argument("--schedulers", type=int, default=3)
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from start to the first due_at")
    parser.add_argument("--profile", action="store_true", help="print lateness per second of due_at (stderr)")
    parser.add_argument("--child", metavar="WORKER_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
