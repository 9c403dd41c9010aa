"""The one place that reads the wall clock.

Tests may move a whole process's clock with CAREPATH_CLOCK_OFFSET_SECONDS (fault scenario 5 advances a
stack by 28 days). Settings refuse the offset outside development, and it is ignored here outside
development as well, so a production process can never run on a shifted clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.settings import get_settings


def _offset() -> timedelta:
    settings = get_settings()
    if settings.env != "development" or not settings.clock_offset_seconds:
        return timedelta(0)
    return timedelta(seconds=settings.clock_offset_seconds)


def utcnow() -> datetime:
    return datetime.now(UTC) + _offset()


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values (as SQLite returns them) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat(value: datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")
