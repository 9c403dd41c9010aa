"""Official test helpers shipped beside the code: fresh databases on either backend, a fixed clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("CAREPATH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CAREPATH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_backend() -> str:
    """sqlite (embedded default) or pg (PostgreSQL + Redis), from CAREPATH_TEST_BACKEND."""
    backend = os.environ.get("CAREPATH_TEST_BACKEND", "sqlite")
    if backend not in ("sqlite", "pg"):
        raise RuntimeError("CAREPATH_TEST_BACKEND must be sqlite or pg")
    return backend


test_backend.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, wherever it is imported


def _pg_conninfo(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_postgres_database(admin_url: str = PG_ADMIN_URL, template: str | None = None) -> Iterator[str]:
    """CREATE a uniquely named database (a copy of `template` if given: much faster than migrating each
    time), yield its SQLAlchemy URL, DROP it afterwards."""
    name = f"carepath_test_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_pg_conninfo(admin_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{copy_of}')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        from shared.db.engine import get_engine

        get_engine.cache_clear()
        with psycopg.connect(_pg_conninfo(admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{(directory / 'carepath.db').as_posix()}"


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now
