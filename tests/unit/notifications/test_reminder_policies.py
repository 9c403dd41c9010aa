"""Reminder policies as values: escalation instants, the scheduler's sleep, the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.notifications.escalation import add_business_days, escalation_at
from services.notifications.scheduler import delivery_event_id, sleep_seconds
from services.notifications.transitions import USER_ACTIONS, target_status

MON = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (MON, MON + timedelta(days=2)),  # Mon -> Wed
        (MON + timedelta(days=3), MON + timedelta(days=7)),  # Thu -> Mon
        (MON + timedelta(days=4), MON + timedelta(days=8)),  # Fri -> Tue
        (MON + timedelta(days=5), datetime(2026, 3, 11, tzinfo=UTC)),  # Sat -> Wed 00:00
        (MON + timedelta(days=6), datetime(2026, 3, 11, tzinfo=UTC)),  # Sun -> Wed 00:00
    ],
)
def test_two_business_days(start, expected):  # type: ignore[no-untyped-def]
    assert add_business_days(start, 2) == expected
    assert escalation_at("pdmp_review", start) == expected


def test_urgent_escalates_after_an_hour_any_day():  # type: ignore[no-untyped-def]
    saturday = MON + timedelta(days=5)
    assert escalation_at("urgent_surgical_referral", saturday) == saturday + timedelta(hours=1)


@pytest.mark.parametrize(
    ("earliest", "idle", "expected"),
    [
        (None, False, 0.5),
        (MON + timedelta(seconds=0.2), False, 0.2),
        (MON + timedelta(seconds=7), False, 0.5),
        (MON - timedelta(seconds=1), False, 0.0),
        (MON - timedelta(seconds=1), True, 0.1),
    ],
)
def test_scheduler_sleeps_until_the_next_action_capped(earliest, idle, expected):  # type: ignore[no-untyped-def]
    assert sleep_seconds(MON, earliest, 0.5, idle=idle) == pytest.approx(expected)


def test_terminal_statuses_accept_no_action_and_scheduled_cannot_be_acknowledged():  # type: ignore[no-untyped-def]
    for status in ("completed", "dismissed", "cancelled"):
        assert all(target_status(action, status) is None for action in USER_ACTIONS)
    assert target_status("acknowledge", "scheduled") is None
    assert target_status("snooze", "scheduled") is None
    assert target_status("complete", "scheduled") == "completed"


def test_delivery_event_id_is_stable_per_patient_kind_and_due():  # type: ignore[no-untyped-def]
    same = delivery_event_id("p", "pt_follow_up", MON)
    assert same == delivery_event_id("p", "pt_follow_up", MON.astimezone(timezone(timedelta(hours=2))))
    assert same != delivery_event_id("p", "pt_follow_up", MON + timedelta(seconds=1))
    assert same != delivery_event_id("q", "pt_follow_up", MON)
