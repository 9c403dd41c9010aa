#!/usr/bin/env python3
"""carepath's two commands, for a fresh machine with only Python 3.11:

    python3 dev.py up     set up (virtualenv, install, migrate) and run the stack on the embedded default
    python3 dev.py test   set up and run the whole test suite (embedded default, then PostgreSQL + Redis)

The virtualenv lives in .venv and is reinstalled only when pyproject.toml or constraints.txt change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".carepath-installed"


def _say(message: str) -> None:
    print(f"[dev.py] {message}", flush=True)


def _python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if not found:
        sys.exit("carepath needs Python 3.11 (python3.11 was not found on PATH)")
    return found


def _run(*args: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def ensure_venv() -> None:
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        _say("creating .venv")
        subprocess.check_call([_python311(), "-m", "venv", str(VENV)])
    _say("installing carepath and its test tools into .venv (pinned by constraints.txt)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.check_call([*pip, "-c", "constraints.txt", "-e", ".[test]"], cwd=ROOT)
    STAMP.write_text(wanted)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def cmd_up() -> int:
    ensure_venv()
    os.execv(str(BIN / "carepath"), [str(BIN / "carepath"), "up"])
    return 0  # not reached


CHECKS = (
    ("lint (ruff check)", ["ruff", "check", "."]),
    ("format (ruff format --check)", ["ruff", "format", "--check", "."]),
    (
        "types, strict on the layers everything stands on (mypy --strict shared, pathway rules)",
        ["mypy", "--strict", "shared", "services/pathway/rules"],
    ),
    ("types of the services and the composition root (mypy)", ["mypy", "carepath", "services"]),
    (
        "architecture contracts (import-linter): services independent, shared knows no service, rules pure",
        ["lint-imports", "--no-cache"],
    ),
    (
        "compose.yaml against the Compose specification schema",
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
    ),
    # promtool: Debian's prometheus package (scripts/install-debian-tools.sh, run by `dev.py test` first)
    (
        "alert rules (promtool check rules)",
        ["/usr/bin/promtool", "check", "rules", "deploy/prometheus/carepath-alerts.yml"],
    ),
    (
        "alert rule unit tests (promtool test rules)",
        ["/usr/bin/promtool", "test", "rules", "deploy/prometheus/carepath-alerts.test.yml"],
    ),
)


def _checks() -> int:
    """The team's gates, before any test: each must pass (CI runs them through this command)."""
    for title, (tool, *args) in CHECKS:
        _say(title)
        if _run(BIN / tool, *args):
            _say(f"FAILED: {title}")
            return 1
    return 0


def cmd_test(extra: list[str]) -> int:
    ensure_venv()
    _run("bash", "scripts/install-debian-tools.sh")
    if _checks():
        return 1
    env = {**os.environ, "CAREPATH_TEST_BACKEND": "sqlite"}
    _say("test suite on the embedded default (SQLite + filesystem broker)")
    if _run(BIN / "pytest", "-q", "--ignore=tests/faults", *extra, env=env):
        return 1
    pg_up = _reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)
    if not pg_up:
        if os.environ.get("CAREPATH_REQUIRE_DISTRIBUTED") == "1":
            _say("PostgreSQL or Redis is not reachable on 127.0.0.1, and the distributed run is required")
            return 1
        _say("PostgreSQL/Redis not running on 127.0.0.1: distributed run skipped (CI always runs it)")
        return 0
    _say("integration, end-to-end and fault tests on PostgreSQL + Redis (faults: private servers they may kill)")
    env = {**os.environ, "CAREPATH_TEST_BACKEND": "pg"}
    return _run(
        BIN / "pytest",
        "-q",
        "tests/integration",
        "tests/e2e",
        "tests/browser",
        "tests/fuzz",
        "tests/faults",
        "tests/bench",  # `carepath bench --quick`: its own stack on the local PostgreSQL (about 2 minutes)
        *extra,
        env=env,
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test"):
        print(__doc__)
        return 2
    return cmd_up() if argv[0] == "up" else cmd_test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
