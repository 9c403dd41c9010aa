"""Real processes: `carepath up` (or single parts) against the selected backend, driven over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.testing import REDIS_URL, fresh_postgres_database, sqlite_url, test_backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def carepath_command() -> list[str]:
    found = shutil.which("carepath", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "carepath.cli"]


@dataclass
class Stack:
    env: dict[str, str]
    workdir: Path
    intake_url: str
    notifications_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *parts: str) -> None:
        for part in parts:
            log = open(self.workdir / f"{part}.log", "ab")  # noqa: SIM115 - the child process owns it
            self.processes[part] = subprocess.Popen(
                [*carepath_command(), part],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def stop(self, part: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        process = self.processes.pop(part)
        if process.poll() is None:
            os.killpg(process.pid, sig) if sig == signal.SIGKILL else process.send_signal(sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()

    def stop_all(self) -> None:
        for part in list(self.processes):
            self.stop(part)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*carepath_command(), *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def token(self, org: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.run('token', 'create', '--org', org, '--role', role)}"}

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for url in (self.intake_url, self.notifications_url):
            while True:
                self.assert_running()
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} not ready; logs: {self.logs()}")
                time.sleep(0.2)

    def assert_running(self) -> None:
        dead = {part: p.returncode for part, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"processes died: {dead}; logs: {self.logs()}"

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-8000:]}" for f in sorted(self.workdir.glob("*.log")))

    def child_pid(self, parent: str, part: str) -> int:
        """The pid of `carepath up`'s child running `part`."""
        parent_pid = str(self.processes[parent].pid)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if fields[1] == parent_pid and part.encode() in cmdline:
                return int(stat.parent.name)
        raise AssertionError(f"no {part} child of {parent}")


def wait_for(probe: Callable[[], Any], timeout: float = 60, interval: float = 0.25, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def _base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_") or k.startswith("CAREPATH_TEST_")}
    env.update(
        {
            "CAREPATH_VAR_DIR": str(workdir / "var"),
            "CAREPATH_INTAKE_PORT": str(free_port()),
            "CAREPATH_NOTIFICATIONS_PORT": str(free_port()),
            "CAREPATH_ALLOW_PRIVATE_WEBHOOKS": "true",
            "CAREPATH_LOG_LEVEL": "INFO",
        }
    )
    return env


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a private stack on the selected backend (fresh database, empty broker)."""
    env = _base_env(tmp_path)
    if test_backend() == "pg":
        redis.Redis.from_url(REDIS_URL).flushdb()
        with fresh_postgres_database() as url:
            env.update({"CAREPATH_DATABASE_URL": url, "CAREPATH_BROKER_URL": REDIS_URL})
            yield env
        redis.Redis.from_url(REDIS_URL).flushdb()
    else:
        env.update({"CAREPATH_DATABASE_URL": sqlite_url(tmp_path / "var"), "CAREPATH_BROKER_URL": "filesystem://"})
        yield env


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def stack_factory(stack_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = Stack(
        env=stack_env,
        workdir=tmp_path,
        intake_url=f"http://127.0.0.1:{stack_env['CAREPATH_INTAKE_PORT']}",
        notifications_url=f"http://127.0.0.1:{stack_env['CAREPATH_NOTIFICATIONS_PORT']}",
    )
    try:
        yield stack
    finally:
        stack.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(f"\n===== process logs of the failed test =====\n{stack.logs()}")


@pytest.fixture
def stack(stack_factory: Stack) -> Stack:
    """The whole stack as `carepath up` runs it."""
    stack_factory.start("up")
    stack_factory.wait_ready()
    return stack_factory
