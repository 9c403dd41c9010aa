"""Fixtures shared by all tests: a configured, migrated database on the selected backend.

CAREPATH_TEST_BACKEND=sqlite (default: embedded, SQLite file + filesystem broker) or pg (the local
PostgreSQL + Redis). CI runs the integration and e2e suites once per backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from shared.db.engine import get_engine
from shared.db.schema import upgrade
from shared.messaging.celery_app import get_celery
from shared.settings import Settings, get_settings
from shared.testing import REDIS_URL, fresh_postgres_database, sqlite_url, test_backend


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_celery.cache_clear()


@pytest.fixture
def backend() -> str:
    return test_backend()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """PostgreSQL only: one migrated database per session that each test's database is copied from."""
    if test_backend() != "pg":
        yield None
        return
    with fresh_postgres_database() as url:
        upgrade(url)
        get_engine(url).dispose()  # CREATE DATABASE … TEMPLATE needs the template without connections
        yield make_url(url).database


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, pg_template: str | None
) -> Iterator[Settings]:
    """Settings for one test: its own migrated database (and broker folder), applied to the environment
    so code that calls get_settings() and child processes see the same configuration."""
    var_dir = tmp_path / "var"
    env = {
        "CAREPATH_VAR_DIR": str(var_dir),
        "CAREPATH_ALLOW_PRIVATE_WEBHOOKS": "true",
        # Rate-limit counters of one test only (on Redis, under the pg backend, they would outlive it).
        "CAREPATH_RATE_LIMIT_PREFIX": f"carepath-test-{uuid.uuid4().hex[:12]}",
    }

    def apply(extra: dict[str, str]) -> Settings:
        for key, value in {**env, **extra}.items():
            monkeypatch.setenv(key, value)
        _clear_caches()
        configured = get_settings()
        upgrade(configured.effective_database_url)
        return configured

    if backend == "pg":
        with fresh_postgres_database(template=pg_template) as url:
            yield apply({"CAREPATH_DATABASE_URL": url, "CAREPATH_BROKER_URL": REDIS_URL})
            get_engine(url).dispose()
    else:
        yield apply({"CAREPATH_DATABASE_URL": sqlite_url(var_dir), "CAREPATH_BROKER_URL": "filesystem://"})
    _clear_caches()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own CAREPATH_* settings."""
    for key in list(os.environ):
        if key.startswith("CAREPATH_") and not key.startswith("CAREPATH_TEST_"):
            monkeypatch.delenv(key, raising=False)
    _clear_caches()
