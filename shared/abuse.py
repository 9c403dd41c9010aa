"""Abuse limits (OWASP API4, unrestricted resource consumption): request rates per token and per
organisation, worklist sign-in attempts per client address and per subject, and a cap on concurrent
what-if evaluations in a process.

Rates use the `limits` library's moving window. Storage: `CAREPATH_RATE_LIMIT_STORAGE` if set, else the
Redis broker of the distributed deployment (counts are shared by every process), else process memory (the
embedded deployment is one process per service). Over a limit is 429 with `Retry-After` (seconds).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from shared.settings import Settings, get_settings

TOO_MANY = 429


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # whole seconds, at least 1


_log = logging.getLogger("carepath.abuse")


def storage_uri(settings: Settings) -> str:
    if settings.rate_limit_storage:
        return settings.rate_limit_storage
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


@lru_cache(maxsize=16)
def _limiter(uri: str, prefix: str, scope: str) -> MovingWindowRateLimiter:
    """One limiter per storage; `scope` (the database URL) keeps two configurations in one process (tests)
    from sharing memory counts."""
    del scope
    options = {"key_prefix": prefix} if uri.startswith(("redis", "rediss")) else {}
    storage = storage_from_string(uri, **options)
    if not isinstance(storage, Storage):  # an async storage (async+redis://…) cannot serve sync routes
        raise ValueError("CAREPATH_RATE_LIMIT_STORAGE must name a synchronous storage (redis://…, memory://)")
    return MovingWindowRateLimiter(storage)


def limiter(settings: Settings) -> MovingWindowRateLimiter:
    return _limiter(storage_uri(settings), settings.rate_limit_prefix, settings.effective_database_url)


@lru_cache(maxsize=64)
def _item(text: str) -> RateLimitItem:
    return parse(text)


def hit(settings: Settings, rate: str, *identifiers: str) -> Refusal | None:
    """Count one hit against `rate` ("120/minute") for `identifiers`; a Refusal when over it."""
    if not settings.rate_limits_enabled or not rate:
        return None
    item = _item(rate)
    window = limiter(settings)
    try:
        if window.hit(item, *identifiers):
            return None
        reset_at, _ = window.get_window_stats(item, *identifiers)
    except Exception as exc:  # the counters' store (Redis) is down: fail open, never a 500 for a stored update
        _log.warning("rate limit not checked: storage unavailable (%s)", type(exc).__name__)
        return None
    return Refusal(max(1, math.ceil(reset_at - time.time())))


def too_many(refusal: Refusal, what: str) -> HTTPException:
    return HTTPException(TOO_MANY, detail=f"too many requests ({what}); retry later", headers=retry_headers(refusal))


def retry_headers(refusal: Refusal) -> dict[str, str]:
    return {"Retry-After": str(refusal.retry_after)}


def check_principal(settings: Settings, org: str, token_id: str) -> None:
    """Per-token, then per-organisation request rate: 429 when over either (a refused hit on the token does
    not count against the organisation)."""
    refusal = hit(settings, settings.rate_limit_per_token, "token", token_id) or hit(
        settings, settings.rate_limit_per_org, "org", org
    )
    if refusal is not None:
        raise too_many(refusal, "rate limit")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_login(settings: Settings, address: str, subject: str | None) -> Refusal | None:
    """Sign-in attempts: per client address, and per subject the pasted token names (before its signature
    is checked: guessing at one person's session is throttled whichever address it comes from)."""
    return hit(settings, settings.login_limit_per_client, "login-client", address) or (
        hit(settings, settings.login_limit_per_subject, "login-subject", subject) if subject else None
    )


# Concurrent what-if evaluations per process: CPU work a caller can make large (2,000 updates a body).
_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def what_if_slots(settings: Settings) -> threading.BoundedSemaphore:
    with _slots_lock:
        size = settings.what_if_concurrency
        if size not in _slots:
            _slots[size] = threading.BoundedSemaphore(size)
        return _slots[size]


@contextmanager
def what_if_slot(settings: Settings | None = None) -> Iterator[None]:
    """Hold one of the process' what-if slots, waiting at most `what_if_queue_seconds`; else 429."""
    settings = settings or get_settings()
    slots = what_if_slots(settings)
    if not slots.acquire(timeout=settings.what_if_queue_seconds):
        raise too_many(Refusal(1), "what-if evaluations in progress")
    try:
        yield
    finally:
        slots.release()


async def what_if_body_cap(request: Request) -> None:
    """Dependency: a what-if body larger than `what_if_max_body_bytes` is 413 (before it is parsed)."""
    limit = get_settings().what_if_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"what-if body larger than {limit} bytes")
    if len(await request.body()) > limit:
        raise HTTPException(413, detail=f"what-if body larger than {limit} bytes")
