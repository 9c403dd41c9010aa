"""The figures of issue 13, each measured beside its ceiling in the same run (docs/performance.md)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text

from bench.harness.load import run_client, wrk_post
from bench.harness.stack import (
    Stack,
    carepath_command,
    free_port,
    libpq_url,
    loadavg,
    postgres_database,
    redis_server,
    rss_tree,
)

PGBENCH = "/usr/bin/pgbench"
ORG = "bench"


@dataclass
class Plan:
    """How much of each figure to run: the full run (issue 13's sizes) or --quick (CI: proves the harness)."""

    quick: bool
    intake_seconds: float
    connections: int = 64
    burst_updates: int = 20_000
    burst_patients: int = 2_000
    scaling_updates: int = 5_000
    scaling_patients: int = 500
    workers: tuple[int, ...] = (1, 2, 4)
    drain_timeout: float = 600.0
    steady_rate: float = 200.0
    steady_seconds: float = 600.0
    reminders: int = 10_000
    reminder_window: float = 60.0
    cds_runs: int = 300
    growth_small: tuple[int, int] = (10_000, 10_000)  # (reminders, patients)
    growth_large: tuple[int, int] = (1_000_000, 100_000)
    sqlite_burst_updates: int = 20_000
    sqlite_burst_patients: int = 2_000
    sqlite_workers: tuple[int, ...] = (1, 2)  # `carepath up` runs one worker; the embedded broker is one machine's
    # The no-op ceiling is a rate: measured over a backlog of at most this many tasks (the filesystem broker's
    # ~10 tasks/s per process would need half an hour for 20,000).
    noop_tasks_max: int = 5_000

    @classmethod
    def full(cls) -> Plan:
        return cls(quick=False, intake_seconds=20)

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            intake_seconds=6,  # at 64 connections a loaded machine answers in seconds: long enough to finish some
            burst_updates=200,
            burst_patients=20,
            scaling_updates=100,
            scaling_patients=10,
            workers=(1, 2),
            drain_timeout=60,
            steady_rate=50,
            steady_seconds=5,
            reminders=600,
            reminder_window=5,
            cds_runs=10,
            growth_small=(2_000, 500),
            growth_large=(20_000, 2_000),
            sqlite_burst_updates=40,
            sqlite_burst_patients=4,
        )


@dataclass
class Run:
    plan: Plan
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    stacks: list[Stack] = field(default_factory=list)
    redis_url: str = ""
    log: Callable[[str], None] = print
    pending: list[str] = field(default_factory=list)  # figures still to run (one may run inside another)

    def say(self, message: str) -> None:
        self.log(f"[bench {datetime.now(UTC):%H:%M:%S} load {loadavg()}] {message}")


# -- memory sampler: peak RSS per process type over the whole run ----------------------------------------


class Sampler(threading.Thread):
    def __init__(self, run: Run, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.run_, self.interval, self.stopped = run, interval, threading.Event()
        self.series: dict[str, list[tuple[float, float]]] = {}  # process name -> (t, MB of the largest OS process)

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.wait(self.interval):
            for stack in list(self.run_.stacks):
                for name, process in list(stack.processes.items()):
                    if process.poll() is not None:
                        continue
                    tree = rss_tree(process.pid)
                    if not tree:
                        continue
                    kind = _kind(name)
                    largest = max(rss for _, rss, _ in tree) / 2**20
                    peak = max(p for _, _, p in tree) / 2**20
                    entry = self.run_.memory.setdefault(kind, {"peak_rss_mb": 0.0, "processes": 0})
                    entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], peak), 1)
                    entry["processes"] = max(entry["processes"], len(tree))
                    self.series.setdefault(f"{stack.backend}:{name}", []).append(
                        (round(time.monotonic() - start, 1), round(largest, 1))
                    )


def _kind(name: str) -> str:
    if name.startswith("worker"):
        return "worker"
    return "noop Celery worker" if name.startswith("noop") else name.split("-")[0]


# -- stacks ------------------------------------------------------------------------------------------------


@contextmanager
def pg_stack(run: Run, tag: str) -> Iterator[Stack]:
    with postgres_database(tag) as url:
        stack = Stack("pg", run.workdir / tag, url, run.redis_url)
        _flush_redis(run.redis_url)
        stack.migrate()
        run.stacks.append(stack)
        try:
            yield stack
        finally:
            stack.stop_all()
            run.stacks.remove(stack)
            from shared.db.engine import get_engine

            get_engine(url).dispose()
            get_engine.cache_clear()


@contextmanager
def sqlite_stack(run: Run, tag: str) -> Iterator[Stack]:
    workdir = run.workdir / tag
    stack = Stack("sqlite", workdir, f"sqlite:///{(workdir / 'var' / 'carepath.db').as_posix()}", "filesystem://")
    stack.migrate()
    run.stacks.append(stack)
    try:
        yield stack
    finally:
        stack.stop_all()
        run.stacks.remove(stack)
        from shared.db.engine import get_engine

        get_engine.cache_clear()


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def seed_patients(stack: Stack, count: int, prefix: str) -> list[str]:
    """Patients of the bench organisation, by one Core INSERT (setup, not measured)."""
    from shared.db.engine import get_engine
    from shared.db.tables import Patient

    now = datetime.now(UTC)
    ids = [f"{prefix}-{uuid.uuid4().hex[:8]}-{i}" for i in range(count)]
    with get_engine(stack.settings().effective_database_url).begin() as connection:
        connection.execute(
            insert(Patient.__table__),  # type: ignore[attr-defined]
            [{"id": pid, "org": ORG, "external_id": pid, "created_at": now} for pid in ids],
        )
    return ids


def _scalar(stack: Stack, sql: str, **params: Any) -> Any:
    from shared.db.engine import get_engine

    with get_engine(stack.settings().effective_database_url).connect() as connection:
        return connection.execute(text(sql), params).scalar()


def _epoch(stack: Stack, column: str) -> str:
    return f"EXTRACT(EPOCH FROM {column})" if stack.backend == "pg" else f"(julianday({column}) - 2440587.5) * 86400.0"


def _tree_cpu(stack: Stack, prefix: str) -> float:
    """User + system CPU seconds of the live processes named `prefix…` and all their children."""
    total = 0.0
    for name, process in list(stack.processes.items()):
        if name.startswith(prefix) and process.poll() is None:
            for pid, _, _ in rss_tree(process.pid):
                with suppress(OSError):
                    total += _cpu_seconds(pid, own_only=True)
    return total


def _cpu_seconds(pid: int, own_only: bool = False) -> float:
    """User + system CPU of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11 : 13 if own_only else 15]) / ticks


# -- figure 1: intake ------------------------------------------------------------------------------------


PGBENCH_SCRIPT = """\
BEGIN;
INSERT INTO patient_update (id, patient_id, org, type, occurred_at, occurred_at_text, data, received_at)
  VALUES (gen_random_uuid()::text, :pid, 'bench', 'pain_assessment', now(), '2026-01-01T10:00:00+00:00',
          '{"pain_nrs": 5, "distribution": "axial", "facet_suspected": false}', now());
INSERT INTO outbox_message (event_id, event_type, consumer, envelope, created_at, available_at, attempts)
  VALUES (gen_random_uuid()::text, 'carepath.patient.updated', 'pathway',
          '{"specversion": "1.0", "type": "carepath.patient.updated", "source": "/carepath/intake",
            "id": "00000000-0000-0000-0000-000000000000", "time": "2026-01-01T10:00:00Z",
            "subject": "p", "datacontenttype": "application/json",
            "data": {"patient_id": "p", "org": "bench", "update_ids": ["00000000-0000-0000-0000-000000000000"]}}',
          now(), now(), 0);
COMMIT;
"""


def pgbench(stack: Stack, patient_id: str, seconds: float, clients: int) -> dict[str, Any]:
    script = stack.workdir / "intake_transaction.sql"
    script.write_text(PGBENCH_SCRIPT)
    done = subprocess.run(
        [
            PGBENCH,
            "-n",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(max(1, round(seconds))),
            "-M",
            "prepared",  # :pid as a bound parameter, as psycopg sends it (and prepares after 5 uses)
            "-D",
            f"pid={patient_id}",
            "-f",
            str(script),
            libpq_url(stack.database_url),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
    out = done.stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps ="))
    latency = next(
        (float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("latency average")), 0.0
    )
    return {"clients": clients, "rate": round(tps, 1), "mean_ms": latency}


def _start_intake(stack: Stack) -> None:
    stack.start_part("intake", "intake")
    stack.wait_http("intake", f"{stack.intake_url}/readyz")


def _intake_measure(run: Run, stack: Stack, ids: list[str], token: str, label: str) -> dict[str, Any]:
    url = f"{stack.intake_url}/v1/patients/{ids[0]}/updates"
    wrk_post(url, token, ids, 1 if run.plan.quick else 3, run.plan.connections, stack.workdir / "wrk-warm")
    pid = stack.processes["intake"].pid
    cpu0 = _cpu_seconds(pid)
    result = wrk_post(url, token, ids, run.plan.intake_seconds, run.plan.connections, stack.workdir / f"wrk-{label}")
    cpu = _cpu_seconds(pid) - cpu0
    result["cpu_ms_per_request"] = round(cpu * 1000 / max(result["requests"], 1), 2)
    result["load_avg"] = loadavg()
    return result


def figure_intake(run: Run) -> None:
    out: dict[str, Any] = {}
    with pg_stack(run, "intake") as stack:
        ids = seed_patients(stack, 200, "in")
        token = stack.token()
        _start_intake(stack)
        run.say("1 intake on PostgreSQL: wrk")
        out["pg"] = _intake_measure(run, stack, ids, token, "pg")
        stored = _scalar(stack, "SELECT count(*) FROM patient_update")
        out["pg"]["stored_updates"] = stored
        stack.stop("intake")
        run.say("1 hello-world FastAPI route: wrk")
        port = free_port()
        stack.start("hello", [sys.executable, "-m", "bench.harness.hello", str(port)])
        stack.wait_http("hello", f"http://127.0.0.1:{port}/readyz")
        hello_url = f"http://127.0.0.1:{port}/v1/patients/{ids[0]}/updates"
        wrk_post(hello_url, token, ids, 1, run.plan.connections, stack.workdir / "wrk-warm")
        out["hello"] = wrk_post(
            hello_url, token, ids, run.plan.intake_seconds, run.plan.connections, stack.workdir / "wrk-hello"
        )
        out["hello"]["load_avg"] = loadavg()
        stack.stop("hello")
        run.say("1 pgbench: the same two inserts and a commit")
        out["pgbench"] = pgbench(stack, ids[0], run.plan.intake_seconds, run.plan.connections)
        out["pgbench"]["load_avg"] = loadavg()
    with sqlite_stack(run, "intake-sqlite") as stack:
        ids = seed_patients(stack, 200, "in")
        token = stack.token()
        _start_intake(stack)
        run.say("1 intake on the embedded default (SQLite): wrk")
        out["sqlite"] = _intake_measure(run, stack, ids, token, "sqlite")
        out["sqlite"]["stored_updates"] = _scalar(stack, "SELECT count(*) FROM patient_update")
    for backend in ("pg", "sqlite"):
        out[backend]["ratio_hello"] = round(out[backend]["rate"] / out["hello"]["rate"], 3)
    out["pg"]["ratio_pgbench"] = round(out["pg"]["rate"] / out["pgbench"]["rate"], 3)
    run.results["intake"] = out


# -- figure 2: pathway burst, worker scaling, steady latency ---------------------------------------------


def _worker_ready(stack: Stack, name: str) -> None:
    stack.wait_log(name, "ready", timeout=120)


def _ensure_workers(stack: Stack, count: int, prefix: str, start: Callable[[str, int], None]) -> None:
    running = [n for n in stack.processes if n.startswith(prefix + "-")]
    new = [f"{prefix}-{i}" for i in range(len(running) + 1, count + 1)]
    for name in new:
        start(name, int(name.rsplit("-", 1)[1]))
    for name in new:
        _worker_ready(stack, name)


def _carepath_worker(stack: Stack, multiproc: Path) -> Callable[[str, int], None]:
    def start(name: str, index: int) -> None:
        stack.start_part(
            name,
            "worker",
            "--concurrency",
            "1",
            "--hostname",
            f"{name}@bench",
            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "CAREPATH_LOG_LEVEL": "INFO"},
        )

    return start


def _noop_worker(stack: Stack, done_dir: Path) -> Callable[[str, int], None]:
    def start(name: str, index: int) -> None:
        stack.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.harness.noop",
                "worker",
                "--queues",
                "bench-noop",
                "--concurrency",
                "1",
                "--hostname",
                f"{name}@bench",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            {"CAREPATH_BENCH_NOOP_DIR": str(done_dir)},
        )

    return start


def _burst(stack: Stack, ids: list[str], updates: int) -> float:
    """`updates` updates round-robin over `ids`, one `patient.updated` event each (as single POSTs make),
    committed in one transaction: the backlog becomes visible at once. Returns the commit instant."""
    from services.intake import handlers
    from shared.auth import Principal
    from shared.db.uow import UnitOfWork

    principal = Principal(ORG, "client", "bench")
    base = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    with UnitOfWork(stack.settings()) as uow:
        for i in range(updates):
            update = _parse_update(
                {
                    "type": "pain_assessment",
                    "occurred_at": (base + timedelta(minutes=i)).isoformat(),
                    "data": {"pain_nrs": i % 11, "distribution": "axial"},
                }
            )
            handlers.record_updates(uow, principal, ids[i % len(ids)], [update])
        uow.commit()
    return time.time()


def _parse_update(raw: dict[str, Any]) -> Any:
    from pydantic import TypeAdapter

    from shared.updates import UpdateIn

    return TypeAdapter(UpdateIn).validate_python(raw)


def _max_outbox_id(stack: Stack) -> int:
    return int(_scalar(stack, "SELECT coalesce(max(id), 0) FROM outbox_message") or 0)


def _wait_drained(stack: Stack, after_id: int, expected: int, t0: float, timeout: float) -> dict[str, Any]:
    """Until every `patient.updated` row of the burst is done for the pathway consumer; the drain time is
    the last `done_at` (the consumer's commit) minus the burst's commit."""
    deadline = time.monotonic() + timeout
    sql = (
        "SELECT count(*) FROM outbox_message WHERE id > :after AND consumer = 'pathway' "
        "AND event_type = 'carepath.patient.updated' AND done_at IS NOT NULL"
    )
    done = 0
    while time.monotonic() < deadline:
        done = int(_scalar(stack, sql, after=after_id) or 0)
        if done >= expected:
            break
        time.sleep(0.25)
    last = _scalar(
        stack,
        f"SELECT max({_epoch(stack, 'done_at')}) FROM outbox_message WHERE id > :after AND consumer = 'pathway' "
        "AND event_type = 'carepath.patient.updated'",
        after=after_id,
    )
    elapsed = (float(last) - t0) if last is not None else timeout
    complete = done >= expected
    return {
        "updates": expected,
        "drained": done,
        "complete": complete,
        "drain_s": round(elapsed if complete else timeout, 2),
        "updates_per_s": round(done / elapsed, 1) if elapsed > 0 else 0.0,
    }


def _evaluations(multiproc: Path) -> float:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc))
    total = 0.0
    for metric in registry.collect():
        if metric.name == "carepath_pathway_evaluations":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def _pathway_series(
    run: Run, stack: Stack, bursts: dict[str, tuple[int, int]], workers: tuple[int, ...]
) -> dict[str, list[dict[str, Any]]]:
    """For each worker count (processes added, never restarted): each named burst (updates, patients)."""
    multiproc = stack.workdir / "metrics"
    multiproc.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in bursts}
    for n in workers:
        run.say(f"2 {stack.backend}: starting worker processes up to {n}")
        _ensure_workers(stack, n, "worker", _carepath_worker(stack, multiproc))
        for name, (updates, patients) in bursts.items():
            ids = seed_patients(stack, patients, f"{name}{n}")
            before_evals = _evaluations(multiproc)
            after_id = _max_outbox_id(stack)
            run.say(f"2 {stack.backend} burst of {updates} updates / {patients} patients, {n} worker(s)")
            cpu0 = _tree_cpu(stack, "worker-"), _tree_cpu(stack, "relay")
            t0 = _burst(stack, ids, updates)
            row = _wait_drained(stack, after_id, updates, t0, run.plan.drain_timeout)
            time.sleep(0.3)
            evaluations = _evaluations(multiproc) - before_evals
            worker_cpu = _tree_cpu(stack, "worker-") - cpu0[0]
            row.update(
                workers=n,
                worker_cpu_ms_per_update=round(worker_cpu * 1000 / max(row["drained"], 1), 2),
                relay_cpu_ms_per_update=round((_tree_cpu(stack, "relay") - cpu0[1]) * 1000 / max(row["drained"], 1), 2),
                evaluations=int(evaluations),
                evaluations_per_s=round(evaluations / row["drain_s"], 1) if row["drain_s"] else 0.0,
                load_avg=loadavg(),
            )
            out[name].append(row)
            run.say(f"  drained {row['drained']}/{updates} in {row['drain_s']} s ({row['updates_per_s']}/s)")
    for name in [n for n in stack.processes if n.startswith("worker-")]:
        stack.stop(name)
    return out


def _noop_series(run: Run, stack: Stack, tasks: int, workers: tuple[int, ...]) -> list[dict[str, Any]]:
    from celery import Celery

    from bench.harness import noop

    stack.settings()
    app: Celery = noop.make_app()
    done_dir = stack.workdir / "noop-done"
    done_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in workers:
        _ensure_workers(stack, n, "noop", _noop_worker(stack, done_dir))
        for name in [x for x in stack.processes if x.startswith("noop-")]:
            os.killpg(stack.processes[name].pid, signal.SIGSTOP)
        with app.producer_or_acquire() as producer:
            for i in range(tasks):
                app.send_task("bench.noop", args=(i,), queue="bench-noop", producer=producer)
        t0 = time.time()
        for name in [x for x in stack.processes if x.startswith("noop-")]:
            os.killpg(stack.processes[name].pid, signal.SIGCONT)
        run.say(f"2 {stack.backend} no-op Celery tasks: {tasks}, {n} worker(s)")
        deadline = time.monotonic() + run.plan.drain_timeout
        count, last = 0, t0
        while time.monotonic() < deadline:
            stamps = [t for t in _noop_stamps(done_dir) if t >= t0]
            count = len(stamps)
            if count >= tasks:
                last = max(stamps)
                break
            time.sleep(0.25)
        drain = last - t0 if count >= tasks else run.plan.drain_timeout
        rows.append(
            {
                "workers": n,
                "tasks": tasks,
                "done": count,
                "complete": count >= tasks,
                "drain_s": round(drain, 2),
                "tasks_per_s": round(count / drain, 1) if drain > 0 else 0.0,
                "load_avg": loadavg(),
            }
        )
    for name in [n for n in stack.processes if n.startswith("noop-")]:
        stack.stop(name)
    return rows


def _noop_stamps(done_dir: Path) -> list[float]:
    stamps: list[float] = []
    for path in done_dir.glob("done-*.txt"):
        stamps.extend(float(x) for x in path.read_text().split())
    return stamps


def figure_pathway(run: Run) -> None:
    out: dict[str, Any] = {}
    plan = run.plan
    with pg_stack(run, "pathway") as stack:
        stack.start_part("relay", "relay")
        bursts = {"burst": (plan.burst_updates, plan.burst_patients)}
        if plan.scaling_updates:  # 0: the burst itself is the scaling measurement (issue 15's table)
            bursts["scaling"] = (plan.scaling_updates, plan.scaling_patients)
        series = _pathway_series(run, stack, bursts, plan.workers)
        out["pg"], out["scaling_pg"] = series["burst"], series.get("scaling", series["burst"])
        stack.stop("relay")
        out["noop_pg"] = _noop_series(run, stack, min(plan.burst_updates, plan.noop_tasks_max), plan.workers)
    with sqlite_stack(run, "pathway-sqlite") as stack:
        stack.start_part("relay", "relay")
        series = _pathway_series(
            run, stack, {"burst": (plan.sqlite_burst_updates, plan.sqlite_burst_patients)}, plan.sqlite_workers
        )
        out["sqlite"] = series["burst"]
        stack.stop("relay")
        noop_tasks = min(plan.sqlite_burst_updates, plan.noop_tasks_max // 5)
        out["noop_sqlite"] = _noop_series(run, stack, noop_tasks, plan.sqlite_workers)
    for backend in ("pg", "sqlite"):
        for row, noop_row in zip(out[backend], out[f"noop_{backend}"], strict=False):
            row["noop_tasks_per_s"] = noop_row["tasks_per_s"]
            row["ratio_noop"] = (
                round(row["updates_per_s"] / noop_row["tasks_per_s"], 3) if noop_row["tasks_per_s"] else 0
            )
    run.results["pathway"] = out


def figure_steady(run: Run, sampler: Sampler) -> None:
    """Update → assessment latency under a steady offered rate, with the whole stack running (intake,
    relay, one `carepath worker` as shipped, scheduler, notifications); RSS sampled throughout."""
    plan = run.plan
    with pg_stack(run, "steady") as stack:
        ids = seed_patients(stack, 200, "st")
        token = stack.token()
        for part in ("intake", "relay", "scheduler", "notifications"):
            stack.start_part(part, part)
        stack.start_part("worker", "worker", extra_env={"CAREPATH_LOG_LEVEL": "INFO"})
        stack.wait_http("intake", f"{stack.intake_url}/readyz")
        stack.wait_log("worker", "ready", timeout=120)
        stack.wait_http("notifications", f"{stack.notifications_url}/readyz")
        run.say(f"2 steady {plan.steady_rate:.0f} updates/s for {plan.steady_seconds:.0f} s (memory sampled)")
        mark = len(sampler.series.get("pg:worker", []))
        result = run_client(
            "steady",
            {
                "url": stack.intake_url,
                "token": token,
                "ids": ids,
                "rate": plan.steady_rate,
                "seconds": plan.steady_seconds,
            },
            stack.workdir,
            timeout=plan.steady_seconds + 300,
        )
        accepted = [r for r in result["requests"] if r["status"] == 202]
        by_event = {r["event_id"]: r["done"] for r in accepted}
        deadline = time.monotonic() + max(60.0, plan.steady_seconds)
        rows: list[tuple[str, float]] = []
        while time.monotonic() < deadline:
            rows = _done_times(stack)
            if len([e for e, _ in rows if e in by_event]) >= len(by_event):
                break
            time.sleep(0.5)
        latencies = sorted(done - by_event[e] for e, done in rows if e in by_event)
        run.results["steady"] = {
            "offered_rate": plan.steady_rate,
            "seconds": plan.steady_seconds,
            "offered": len(result["requests"]),
            "sent": len([r for r in result["requests"] if r["status"] != -1]),
            "accepted": len(accepted),
            "achieved_rate": round(len(accepted) / result["elapsed"], 1),
            "evaluated": len(latencies),
            "latency_s": _pcts(latencies),
            "latencies": latencies,
            "post_latency_ms": _pcts(sorted((r["done"] - r["sent"]) * 1000 for r in accepted)),
            "load_avg": loadavg(),
        }
        worker_series = sampler.series.get("pg:worker", [])[mark:]
        run.results["steady"]["worker_rss_series"] = worker_series
        if "cds" in run.pending:  # the order-sign figure reuses this stack's intake (one start fewer)
            run.pending.remove("cds")
            for part in ("worker", "relay", "scheduler", "notifications"):
                stack.stop(part)
            _cds(run, stack)


def _done_times(stack: Stack) -> list[tuple[str, float]]:
    from shared.db.engine import get_engine

    with get_engine(stack.settings().effective_database_url).connect() as connection:
        rows = connection.execute(
            text(
                f"SELECT event_id, {_epoch(stack, 'done_at')} FROM outbox_message "
                "WHERE consumer = 'pathway' AND done_at IS NOT NULL"
            )
        ).all()
    return [(str(e), float(t)) for e, t in rows]


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {"n": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": round(ordered[-1], 4)}


# -- figure 3: reminders -----------------------------------------------------------------------------------


def figure_reminders(run: Run) -> None:
    from bench.bench_scheduler import lateness, seed

    plan = run.plan
    with pg_stack(run, "reminders") as stack:
        stack.start_part("scheduler", "scheduler")
        time.sleep(3 if plan.quick else 5)  # imported and looping before the reminders exist
        stack.assert_running("scheduler")
        run.say(f"3 reminders: {plan.reminders} due within {plan.reminder_window:.0f} s, one scheduler process")
        url = stack.settings().effective_database_url
        seed(url, plan.reminders, datetime.now(UTC) + timedelta(seconds=3), plan.reminder_window)
        deadline = time.monotonic() + plan.reminder_window + 120
        while time.monotonic() < deadline:
            delivered = int(_scalar(stack, "SELECT count(*) FROM reminder WHERE delivered_at IS NOT NULL") or 0)
            if delivered >= plan.reminders:
                break
            time.sleep(0.5)
        recorded, visible = lateness(url)
        run.results["reminders"] = {
            "reminders": plan.reminders,
            "window_s": plan.reminder_window,
            "delivered": len(recorded),
            "recorded_s": _pcts(recorded),
            "visible_s": _pcts(visible),
            "lateness": sorted(recorded),
            "load_avg": loadavg(),
        }


# -- figure 4: CDS order-sign and the what-if -------------------------------------------------------------


def figure_cds(run: Run) -> None:
    with pg_stack(run, "cds") as stack:
        _start_intake(stack)
        _cds(run, stack)


def _cds(run: Run, stack: Stack) -> None:
    from bench.bench_cds import client_jwt, order_sign_body, register_client
    from bench.bench_engine import realistic_patient
    from services.intake import handlers
    from services.pathway.handler import evaluate_patient
    from shared.auth import Principal
    from shared.db.uow import UnitOfWork

    runs = run.plan.cds_runs
    settings = stack.settings()
    facts = realistic_patient(200)
    updates = [{"type": f.type, "occurred_at": f.occurred_at.isoformat(), "data": dict(f.data)} for f in facts]
    with UnitOfWork(settings) as uow:
        patient = handlers.create_patient(uow, Principal(ORG, "client", "bench"), "bench-1")
        handlers.record_updates(uow, Principal(ORG, "client", "bench"), patient.id, [_parse_update(u) for u in updates])
        uow.commit()
        patient_id = patient.id
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "update")
        uow.commit()
    key = register_client(ORG)
    hook_url = f"{stack.intake_url}/cds-services/carepath-order-sign"
    token = stack.token()
    body = order_sign_body("Patient/bench-1")
    whatif = {"updates": updates, "now": "2027-03-01T12:00:00+00:00"}
    requests: list[dict[str, Any]] = []
    for _ in range(runs + 3):
        requests.append(
            {
                "method": "POST",
                "path": "/cds-services/carepath-order-sign",
                "json": body,
                "headers": {"Authorization": f"Bearer {client_jwt(key, hook_url)}"},
            }
        )
    for _ in range(runs + 3):
        requests.append(
            {
                "method": "POST",
                "path": "/v1/pathway:evaluate",
                "json": whatif,
                "headers": {"Authorization": f"Bearer {token}"},
            }
        )
    run.say(f"4 CDS order-sign and pathway:evaluate, 200-update history, {runs} runs each")
    result = run_client("replay", {"url": stack.intake_url, "requests": requests}, stack.workdir, timeout=600)
    samples = result["results"]
    sign, what = samples[3 : runs + 3], samples[runs + 6 :]
    statuses = sorted({s["status"] for s in sign + what})
    run.results["cds"] = {
        "updates": 200,
        "runs": runs,
        "statuses": statuses,
        "order_sign_ms": _pcts95([s["ms"] for s in sign]),
        "what_if_ms": _pcts95([s["ms"] for s in what]),
        "order_sign": sorted(s["ms"] for s in sign),
        "what_if": sorted(s["ms"] for s in what),
        "load_avg": loadavg(),
    }


def _pcts95(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
        "max": round(ordered[-1], 1),
    }


# -- figure 5: growth --------------------------------------------------------------------------------------


def _copy_growth(stack: Stack, reminder_range: tuple[int, int], patient_range: tuple[int, int]) -> None:
    """Patients and scheduled reminders by COPY: 2 % due in the past hour (the worklist's page), the rest
    scheduled over the coming year. Rows already there (the small size) are kept: the ranges are new rows."""
    import psycopg

    now = datetime.now(UTC)
    kinds = [f"kind_{k}" for k in range(10)]
    with psycopg.connect(libpq_url(stack.database_url)) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY patient (id, org, external_id, created_at) FROM STDIN") as copy:
            for i in range(*patient_range):
                copy.write_row((f"g-{i:07d}", ORG, f"g{i}", now))
        columns = (
            "id, org, patient_id, kind, due_at, status, text, citation, fact_ids, next_action_at, "
            "created_at, updated_at, version"
        )
        with cursor.copy(f"COPY reminder ({columns}) FROM STDIN") as copy:
            patients = patient_range[1]
            for n in range(*reminder_range):
                due_now = n % 50 == 0
                jitter = timedelta(microseconds=n % 999_983)  # (patient, kind, due_at) is unique
                due = (
                    now - timedelta(seconds=n % 3600) - jitter
                    if due_now
                    else now + timedelta(seconds=60 + (n * 31) % 31_536_000) + jitter
                )
                copy.write_row(
                    (
                        f"g-r-{n:08d}",
                        ORG,
                        f"g-{n % patients:07d}",
                        kinds[n % 10],
                        due,
                        "due" if due_now else "scheduled",
                        "t",
                        "G1",
                        "[]",
                        None if due_now else due,
                        now,
                        now,
                        1,
                    )
                )
        connection.commit()
    # What autovacuum does after that many inserts (PostgreSQL 13+: autovacuum_vacuum_insert_threshold):
    # statistics and the visibility map, without which no index-only scan skips the table.
    with psycopg.connect(libpq_url(stack.database_url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE patient")
        connection.execute("VACUUM ANALYZE reminder")


def _captured(stack: Stack, work: Callable[[Any], Any]) -> tuple[str, Any]:
    """The first statement on the reminder table that `work(uow)` sends (rolled back): the service's own SQL."""
    from shared.db.engine import get_engine
    from shared.db.uow import UnitOfWork

    captured: list[tuple[str, Any]] = []
    engine = get_engine(stack.settings().effective_database_url)

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "FROM reminder" in statement and not captured:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with UnitOfWork(stack.settings()) as uow:
            work(uow)
            uow.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return captured[0]


def _explain_raw(stack: Stack, statement: str, parameters: Any) -> tuple[str, float]:
    """Like _explain, for a driver-level statement with its own parameters (psycopg %(name)s style)."""
    import psycopg

    with psycopg.connect(libpq_url(stack.database_url)) as connection:
        plan = "\n".join(
            r[0] for r in connection.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).fetchall()
        )
        connection.rollback()
        times = []
        for _ in range(15):
            start = time.perf_counter()
            connection.execute(statement, parameters).fetchall()
            times.append((time.perf_counter() - start) * 1000)
            connection.rollback()
    return plan, round(statistics.median(times), 3)


def _growth_point(
    run: Run, stack: Stack, reminder_range: tuple[int, int], patient_range: tuple[int, int]
) -> dict[str, Any]:
    reminders, patients = reminder_range[1], patient_range[1]
    run.say(f"5 growth: COPY up to {reminders} reminders / {patients} patients")
    start = time.monotonic()
    _copy_growth(stack, reminder_range, patient_range)
    generated = round(time.monotonic() - start, 1)
    from services.notifications import queries
    from services.notifications.claims import claim

    now = datetime.now(UTC)
    due_plan, due_ms = _explain_raw(stack, *_captured(stack, lambda uow: claim(uow, now, "bench", 500, 15.0)))
    worklist = _captured(
        stack,
        lambda uow: queries.list_reminders(
            uow, ORG, patient_id=None, status=["due"], kind=None, due_before=None, cursor=None, limit=50
        ),
    )
    worklist_plan, worklist_ms = _explain_raw(stack, *worklist)
    coordinator = stack.token(ORG, "coordinator")
    page = [
        {
            "method": "GET",
            "path": "/v1/reminders?status=due&limit=50",
            "headers": {"Authorization": f"Bearer {coordinator}"},
        }
    ] * (8 if run.plan.quick else 60)
    http = run_client("replay", {"url": stack.notifications_url, "requests": page}, stack.workdir, timeout=300)
    page_ms = _pcts95([r["ms"] for r in http["results"][2:]])
    # The coordinators' HTML worklist (first page of 50, sorted overdue-first over the open reminders), signed in.
    from shared import sessions

    signed_in = sessions.start(stack.settings(), ORG, "coordinator", "bench-coordinator", "token")
    html = [{"method": "GET", "path": "/worklist", "headers": {"Cookie": f"{sessions.COOKIE}={signed_in.secret}"}}]
    http = run_client(
        "replay",
        {"url": stack.notifications_url, "requests": html * (8 if run.plan.quick else 60)},
        stack.workdir,
        timeout=300,
    )
    assert all(r["status"] == 200 for r in http["results"]), {r["status"] for r in http["results"]}
    html_ms = _pcts95([r["ms"] for r in http["results"][2:]])
    ids = [f"g-{i:07d}" for i in range(0, patients, max(1, patients // 200))][:200]
    token = stack.token()
    intake = wrk_post(
        f"{stack.intake_url}/v1/patients/{ids[0]}/updates",
        token,
        ids,
        run.plan.intake_seconds,
        run.plan.connections,
        stack.workdir / f"wrk-growth-{reminders}",
    )
    return {
        "reminders": reminders,
        "patients": patients,
        "copy_s": generated,
        "due_query_ms": due_ms,
        "worklist_query_ms": worklist_ms,
        "worklist_page_ms": page_ms,
        "worklist_html_ms": html_ms,
        "intake_rate": intake["rate"],
        "intake_p99_ms": intake["p99_ms"],
        "plans": {"due": due_plan, "worklist": worklist_plan},
        "load_avg": loadavg(),
    }


def figure_growth(run: Run) -> None:
    """One database grown in place: measured at the small size, then COPY the rest and measured again."""
    points = []
    (small_r, small_p), (large_r, large_p) = run.plan.growth_small, run.plan.growth_large
    with pg_stack(run, "growth") as stack:
        stack.start_part("intake", "intake")
        stack.start_part("notifications", "notifications")
        stack.wait_http("intake", f"{stack.intake_url}/readyz")
        stack.wait_http("notifications", f"{stack.notifications_url}/readyz")
        points.append(_growth_point(run, stack, (0, small_r), (0, small_p)))
        points.append(_growth_point(run, stack, (small_r, large_r), (small_p, large_p)))
    small, large = points
    run.results["growth"] = {
        "points": points,
        "ratios": {
            key: round(large[key] / small[key], 3) if small[key] else None
            for key in ("due_query_ms", "worklist_query_ms", "intake_rate")
        }
        | {
            f"{name}_p50": round(large[f"{name}_ms"]["p50"] / small[f"{name}_ms"]["p50"], 3)
            for name in ("worklist_page", "worklist_html")
        },
    }


FIGURES: dict[str, Callable[..., None]] = {
    "intake": figure_intake,
    "pathway": figure_pathway,
    "steady": figure_steady,
    "reminders": figure_reminders,
    "cds": figure_cds,
    "growth": figure_growth,
}


@contextmanager
def private_redis(run: Run) -> Iterator[None]:
    with redis_server(run.workdir) as url:
        run.redis_url = url
        yield


def dump(run: Run, path: Path) -> None:
    path.write_text(json.dumps({"results": run.results, "memory": run.memory}, indent=1, default=str))


__all__ = ["FIGURES", "Plan", "Run", "Sampler", "carepath_command", "dump", "private_redis"]
