"""When an unacknowledged due reminder escalates (a policy: values in, an instant out).

Defaults: `urgent_surgical_referral` after 1 hour, every other kind after 2 business days (Mon-Fri,
counted in UTC: organisations have no configured time zone yet).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import as_utc

URGENT_KIND = "urgent_surgical_referral"
# kind -> fixed window; kinds not listed use DEFAULT_BUSINESS_DAYS.
FIXED_WINDOWS: dict[str, timedelta] = {URGENT_KIND: timedelta(hours=1)}
DEFAULT_BUSINESS_DAYS = 2
SATURDAY = 5


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` plus `days` weekdays. A weekend start counts from the following Monday 00:00 UTC, so a
    reminder delivered on Saturday escalates on Wednesday 00:00, not on Monday."""
    moment = as_utc(start)
    if moment.weekday() >= SATURDAY:
        moment = (moment + timedelta(days=7 - moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)
        if moment.weekday() < SATURDAY:
            remaining -= 1
    return moment


def escalation_at(kind: str, since: datetime) -> datetime:
    """The instant a reminder of `kind` that became due at `since` escalates if nobody acknowledged it."""
    window = FIXED_WINDOWS.get(kind)
    if window is not None:
        return as_utc(since) + window
    return add_business_days(since, DEFAULT_BUSINESS_DAYS)
