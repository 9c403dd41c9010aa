"""The harness's own stack: a private PostgreSQL database and Redis server (or a SQLite var dir), real
`carepath` processes started with their environment, and the facts of the machine they ran on."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

PG_ADMIN = os.environ.get("CAREPATH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def carepath_command() -> list[str]:
    found = shutil.which("carepath", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "carepath.cli"]


def machine_facts() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    pg = ""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else ""
    except psycopg.Error:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": model,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgresql": pg,
        "git_commit": commit + ("+dirty" if dirty else ""),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


@contextmanager
def postgres_database(tag: str) -> Iterator[str]:
    """A database of our own on the machine's server, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"carepath_bench_{os.getpid()}_{tag}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port (no persistence), stopped afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("private redis-server did not start") from None
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Stack:
    """One configuration (backend) of carepath processes, each a real `carepath <part>` child."""

    backend: str  # pg | sqlite
    workdir: Path
    database_url: str
    broker_url: str
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **base,
            "CAREPATH_VAR_DIR": str(self.workdir / "var"),
            "CAREPATH_DATABASE_URL": self.database_url,
            "CAREPATH_BROKER_URL": self.broker_url,
            "CAREPATH_INTAKE_PORT": str(free_port()),
            "CAREPATH_NOTIFICATIONS_PORT": str(free_port()),
            "CAREPATH_LOG_LEVEL": "WARNING",
            "CAREPATH_RATE_LIMITS_ENABLED": "false",  # the load is one client: limits would measure themselves
            "CAREPATH_RATE_LIMIT_STORAGE": "memory://",
            "CAREPATH_ALLOW_PRIVATE_WEBHOOKS": "true",
            "PYTHONPATH": str(ROOT),
        }

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CAREPATH_INTAKE_PORT']}"

    @property
    def notifications_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CAREPATH_NOTIFICATIONS_PORT']}"

    def settings(self) -> Any:
        """The same settings in this (client) process: for seeding, tokens and read-back."""
        from shared.db.engine import get_engine
        from shared.messaging.celery_app import get_celery
        from shared.settings import get_settings

        wanted = {k: v for k, v in self.env.items() if k.startswith("CAREPATH_")}
        if any(os.environ.get(k) != v for k, v in wanted.items()):
            os.environ.update(wanted)
            get_settings.cache_clear()
            get_engine.cache_clear()
            get_celery.cache_clear()
        return get_settings()

    def migrate(self) -> None:
        from shared import token_keys
        from shared.db.schema import upgrade
        from shared.files import private_dir

        settings = self.settings()
        private_dir(settings.var_dir)
        settings.signing_key()
        token_keys.keys(settings)
        upgrade(settings.effective_database_url)

    def token(self, org: str = "bench", role: str = "client") -> str:
        from datetime import timedelta

        from shared.auth import create_token

        return str(create_token(self.settings(), org, role, "bench", lifetime=timedelta(hours=4)))

    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            argv,
            env={**self.env, **(extra_env or {})},
            cwd=self.workdir,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_part(self, name: str, part: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.start(name, [*carepath_command(), part, *args], extra_env)

    def stop(self, name: str, timeout: float = 20) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def assert_running(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def wait_http(self, name: str, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.assert_running(name)
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not answering at {url}: {self.log_tail(name)}")
            time.sleep(0.2)

    def wait_log(self, name: str, needle: str, timeout: float = 90) -> None:
        """Until the child's log contains `needle` (e.g. Celery's 'ready.')."""
        path = self.workdir / f"{name}.log"
        deadline = time.monotonic() + timeout
        while True:
            self.assert_running(name)
            if path.exists() and needle in path.read_text(errors="replace"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never logged {needle!r}: {self.log_tail(name)}")
            time.sleep(0.2)


# -- memory: resident set sizes of a process and its children, read from /proc --------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(x) for x in text)
    except OSError:
        pass
    return found


def rss_tree(pid: int) -> list[tuple[int, int, int]]:
    """(pid, RSS bytes, peak RSS bytes) of a process and all its descendants."""
    out: list[tuple[int, int, int]] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        peak = int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
        out.append((current, rss, peak))
        pending.extend(_children(current))
    return out
