"""When an unacknowledged due reminder escalates (a policy: values in, an instant out).

Defaults: `urgent_surgical_referral` after 1 hour, every other kind after 2 business days (Mon-Fri) of the
organisation's time zone (shared/orgtime.py; UTC when none is configured): a business day begins at local
midnight, weekends are local weekends, and the window keeps the local time of day across a change of
daylight-saving time (due Friday 15:00 CET escalates Tuesday 15:00 CEST, 71 hours later).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

from shared.clock import as_utc

URGENT_KIND = "urgent_surgical_referral"
# kind -> fixed window; kinds not listed use DEFAULT_BUSINESS_DAYS.
FIXED_WINDOWS: dict[str, timedelta] = {URGENT_KIND: timedelta(hours=1)}
DEFAULT_BUSINESS_DAYS = 2
SATURDAY = 5


def add_business_days(start: datetime, days: int, zone: tzinfo = UTC) -> datetime:
    """`start` plus `days` weekdays of `zone`, at the same local time of day (UTC result). A start on a
    local weekend counts from the following Monday 00:00 local time, so a reminder delivered on Saturday
    escalates on Wednesday 00:00, not on Monday."""
    moment = as_utc(start).astimezone(zone)
    day, clock = moment.date(), moment.timetz().replace(tzinfo=None)
    if day.weekday() >= SATURDAY:
        day, clock = day + timedelta(days=7 - day.weekday()), time(0)
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if day.weekday() < SATURDAY:
            remaining -= 1
    # A wall time that a spring-forward gap skips resolves with the offset before the gap (PEP 495, fold=0).
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def escalation_at(kind: str, since: datetime, zone: tzinfo = UTC) -> datetime:
    """The instant a reminder of `kind` that became due at `since` escalates if nobody acknowledged it,
    business days counted in the organisation's `zone`."""
    window = FIXED_WINDOWS.get(kind)
    if window is not None:
        return as_utc(since) + window
    return add_business_days(since, DEFAULT_BUSINESS_DAYS, zone)
