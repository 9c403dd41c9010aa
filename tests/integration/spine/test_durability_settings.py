"""Configuration guard: the settings the durability promise depends on. A later change that weakens one of
them fails here, not in production (reliability: at-least-once delivery, a 202 means stored)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text

from shared.db.engine import get_engine
from shared.messaging.celery_app import create_celery
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_celery_acknowledges_late_and_takes_one_task_at_a_time() -> None:
    for broker in ("filesystem://", "redis://127.0.0.1:6379/0", "amqp://guest@127.0.0.1//"):
        conf = create_celery(Settings(broker_url=broker)).conf
        assert conf.task_acks_late is True, broker
        assert conf.task_reject_on_worker_lost is True, broker
        assert conf.worker_prefetch_multiplier == 1, broker
        assert conf.task_ignore_result is True and conf.result_backend is None, broker


def test_redis_visibility_timeout_is_above_any_countdown() -> None:
    options = create_celery(Settings(broker_url="redis://127.0.0.1:6379/0")).conf.broker_transport_options
    # No task is ever delayed (time lives in the database): no countdown/eta anywhere in the code...
    delayed = [
        str(path.relative_to(ROOT))
        for folder in ("services", "shared", "carepath")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\b(countdown|eta)\s*=", path.read_text())
    ]
    assert delayed == []
    # ...so the visibility timeout only has to outlast the longest task (hard time limit).
    conf = create_celery(Settings(broker_url="redis://127.0.0.1:6379/0")).conf
    assert options["visibility_timeout"] > conf.task_time_limit


def test_the_database_commits_durably(settings: Settings) -> None:
    engine = get_engine(settings.effective_database_url)
    with engine.connect() as connection:
        if settings.is_sqlite:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        else:
            assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
            assert connection.execute(text("SHOW fsync")).scalar() == "on"
