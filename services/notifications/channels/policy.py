"""Delivery policy as values: given an attempt's outcome, what happens next (the dispatcher does it).

Retries use exponential backoff with "equal jitter" (half fixed, half random) so endpoints that failed
together do not retry together, capped at MAX_DELAY, and go on until RETRY_WINDOW has passed since the
event was recorded: a receiver down for a weekend still gets every delivery afterwards.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRST_DELAY = timedelta(seconds=10)
MAX_DELAY = timedelta(hours=4)
RETRY_WINDOW = timedelta(hours=72)
# An endpoint that has failed without a single success for this long is disabled.
DISABLE_AFTER = timedelta(hours=72)
# After a secret rotation both secrets sign for this long, so receivers can switch without a gap.
ROTATION_OVERLAP = timedelta(hours=24)
# A claimed delivery comes back to the sweep after this if its dispatcher died mid-send.
CLAIM_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced. `permanent`: retrying cannot help (SMTP 5xx, HTTP 410 Gone)."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    disable_target: bool = False  # the receiver asked us to stop (HTTP 410)


@dataclass(frozen=True)
class Delivered:
    at: datetime


@dataclass(frozen=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str
    disable_target: bool = False


Decision = Delivered | RetryAt | GiveUp


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """Delay after the `attempts`-th failed attempt (1-based): 10 s, 20 s, 40 s … ≤ 4 h, with jitter."""
    exponent = min(max(attempts - 1, 0), 20)
    ceiling = min(FIRST_DELAY * (2**exponent), MAX_DELAY)
    return ceiling / 2 + ceiling / 2 * rand()


def decide(
    outcome: Outcome,
    *,
    attempts: int,
    created_at: datetime,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The next step for a delivery after its `attempts`-th attempt ended with `outcome` at `now`."""
    if outcome.ok:
        return Delivered(at=now)
    if outcome.permanent:
        return GiveUp(reason=outcome.error or "permanent failure", disable_target=outcome.disable_target)
    if now - created_at >= RETRY_WINDOW:
        return GiveUp(reason=f"still failing after {RETRY_WINDOW}: {outcome.error or 'error'}")
    return RetryAt(at=now + backoff(attempts, rand))


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint is disabled once it has failed continuously for DISABLE_AFTER."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


def signing_secrets(
    secret: str, previous_secret: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign a message at `now`: the current one, plus the previous one while it overlaps."""
    if previous_secret and previous_expires_at is not None and now < previous_expires_at:
        return [secret, previous_secret]
    return [secret]
