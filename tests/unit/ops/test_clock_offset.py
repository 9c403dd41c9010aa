"""CAREPATH_CLOCK_OFFSET_SECONDS moves a test stack's clock (fault scenario 5); production can never use it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.clock import utcnow
from shared.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_offset_moves_the_clock_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_ENV", "development")
    monkeypatch.setenv("CAREPATH_CLOCK_OFFSET_SECONDS", str(28 * 86400))
    shifted = utcnow() - datetime.now(UTC)
    assert timedelta(days=28) - timedelta(seconds=5) < shifted < timedelta(days=28) + timedelta(seconds=5)


def test_no_offset_reads_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREPATH_CLOCK_OFFSET_SECONDS", raising=False)
    assert abs(utcnow() - datetime.now(UTC)) < timedelta(seconds=5)


def test_production_refuses_an_offset() -> None:
    with pytest.raises(ValidationError, match="CLOCK_OFFSET"):
        Settings(env="production", clock_offset_seconds=60, secret_key="x" * 40)
