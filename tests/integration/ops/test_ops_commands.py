"""Operations commands: `carepath migrate` names the revision, shows current and pending ones and explains a
missing database in one line; the HTTP services refuse to start when they could not sign or verify tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from shared.db.schema import head_revision

ROOT = Path(__file__).resolve().parents[3]


def _carepath(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAREPATH_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "carepath.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_names_revisions_and_show_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    shown = _carepath("migrate", "--show", url=url)
    assert shown.returncode == 0, shown.stderr
    assert "none (empty database)" in shown.stdout and f"code expects: {head_revision()}" in shown.stdout
    assert "pending: none" not in shown.stdout
    first = _carepath("migrate", url=url)
    assert first.returncode == 0, first.stderr
    assert f"to revision {head_revision()} (head)" in first.stderr
    again = _carepath("migrate", url=url)
    assert f"at the current schema (revision {head_revision()})" in again.stderr
    assert "pending: none" in _carepath("migrate", "--show", url=url).stdout


def _postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def test_migrate_on_a_missing_postgresql_database_says_so_in_one_line() -> None:
    done = _carepath("migrate", url="postgresql+psycopg://postgres@127.0.0.1:5432/carepath_no_such_database")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("carepath migrate: cannot open the database:")
    if _postgres_listening():  # with no server at all the one line says that instead
        assert "does not exist" in lines[0] and "createdb" in lines[0]


def test_http_services_refuse_to_start_without_a_signing_key_in_production(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CAREPATH_ENV": "production",
        "CAREPATH_SECRET_KEY": "",
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "CAREPATH_INTAKE_PORT": "0",
        "CAREPATH_NOTIFICATIONS_PORT": "0",
    }
    for part in ("intake", "notifications"):
        done = subprocess.run(
            [sys.executable, "-m", "carepath.cli", part], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 78, done.stderr
        assert "not starting: CAREPATH_SECRET_KEY is required outside development" in done.stderr
        assert "Traceback" not in done.stderr


def test_migrate_creates_the_embedded_database_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'carepath.db'}"
    done = _carepath("migrate", url=url)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "not" / "yet" / "carepath.db").exists()
