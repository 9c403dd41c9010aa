"""Black-box client for the pathway what-if route (`POST /v1/pathway:evaluate`), used by the spec audit.

Builds updates with explicit instants (written with any UTC offset) and returns the assessment JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi.testclient import TestClient

from carepath.apps import create_intake_app as create_app
from shared.auth import create_token
from shared.settings import Settings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SEC = timedelta(seconds=1)


def at(days: float = 0, seconds: float = 0, base: datetime = T0) -> datetime:
    return base + timedelta(days=days, seconds=seconds)


def iso(t: datetime, offset_hours: float | None = None) -> str:
    """RFC 3339 text of `t`, written in the given UTC offset (default UTC, with 'Z')."""
    if offset_hours is None:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return t.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def u(type_: str, t: datetime, offset_hours: float | None = None, **data: Any) -> dict[str, Any]:
    return {"type": type_, "occurred_at": iso(t, offset_hours), "data": data}


class SpecClient:
    def __init__(self, settings: Settings) -> None:
        self.client = TestClient(create_app())
        self.headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}

    def evaluate(self, updates: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        response = self.client.post(
            "/v1/pathway:evaluate", json={"updates": updates, "now": iso(now)}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return response.json()


def deadlines(assessment: dict[str, Any], kind: str) -> list[tuple[datetime, str]]:
    """(due_at as UTC instant, status) of every deadline of `kind`, sorted by due_at."""
    return sorted((utc(d["due_at"]), d["status"]) for d in assessment["deadlines"] if d["kind"] == kind)


def flags(assessment: dict[str, Any]) -> set[str]:
    return {f["code"] if isinstance(f, dict) else f for f in assessment["flags"]}
