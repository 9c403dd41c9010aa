"""Escalation windows in the organisation's business days: local midnight starts a day, weekends are local,
and the local time of day is kept across daylight-saving changes (Europe/Berlin 2027-03-28 and 2027-10-31,
America/New_York 2027-03-14 and 2027-11-07)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifications.escalation import add_business_days, escalation_at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "start", "expected", "hours"),
    [
        # Friday 15:00 CET -> Tuesday 15:00 CEST: the spring-forward weekend makes the window an hour shorter.
        (BERLIN, at(BERLIN, 2027, 3, 26, 15), at(BERLIN, 2027, 3, 30, 15), 95),
        # Friday 15:00 CEST -> Tuesday 15:00 CET: an hour longer in autumn.
        (BERLIN, at(BERLIN, 2027, 10, 29, 15), at(BERLIN, 2027, 11, 2, 15), 97),
        # Saturday (local) after the change -> Wednesday 00:00 local.
        (BERLIN, at(BERLIN, 2027, 3, 27, 23, 30), at(BERLIN, 2027, 3, 31, 0), None),
        (NEW_YORK, at(NEW_YORK, 2027, 3, 12, 9), at(NEW_YORK, 2027, 3, 16, 9), 95),
        (NEW_YORK, at(NEW_YORK, 2027, 11, 5, 17), at(NEW_YORK, 2027, 11, 9, 17), 97),
    ],
)
def test_local_business_days_across_dst(zone: ZoneInfo, start: datetime, expected: datetime, hours: int | None) -> None:
    result = add_business_days(start.astimezone(UTC), 2, zone)
    assert result.tzinfo is UTC
    assert result == expected
    assert result.astimezone(zone).replace(tzinfo=None) == expected.replace(tzinfo=None)
    if hours is not None:
        assert result - start == timedelta(hours=hours)
    assert escalation_at("pdmp_review", start, zone) == expected


def test_a_local_weekend_is_not_the_utc_weekend() -> None:
    # Friday 23:30 in New York is already Saturday in UTC: counted as a Friday there (-> Tuesday 23:30 local).
    friday_night = at(NEW_YORK, 2027, 6, 4, 23, 30)
    assert friday_night.astimezone(UTC).weekday() == 5
    assert add_business_days(friday_night, 2, NEW_YORK) == at(NEW_YORK, 2027, 6, 8, 23, 30)
    assert add_business_days(friday_night, 2) == datetime(2027, 6, 9, tzinfo=UTC)  # UTC: a Saturday start
    # Monday 00:30 in Berlin is still Sunday in UTC: a business day there, not a weekend start.
    monday = at(BERLIN, 2027, 6, 7, 0, 30)
    assert monday.astimezone(UTC).weekday() == 6
    assert add_business_days(monday, 2, BERLIN) == at(BERLIN, 2027, 6, 9, 0, 30)


def test_urgent_window_is_an_hour_in_any_zone() -> None:
    start = at(BERLIN, 2027, 3, 28, 1, 30)  # an hour later is 03:30 CEST (02:xx does not exist)
    assert escalation_at("urgent_surgical_referral", start, BERLIN) == start.astimezone(UTC) + timedelta(hours=1)
