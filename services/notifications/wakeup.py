"""Waking sleeping schedulers early when a reminder's next action moved closer.

In-process: a threading.Event set after the unit of work commits. Across processes (PostgreSQL only): a
`NOTIFY carepath_reminders` sent in the same transaction (PostgreSQL delivers it on commit, never for a
rolled-back transaction) and a listener thread beside each scheduler. SQLite has no such channel: there
the scheduler's capped sleep (settings.scheduler_max_sleep) bounds the delay.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.db.uow import UnitOfWork

log = logging.getLogger("carepath.scheduler")

CHANNEL = "carepath_reminders"
LISTEN_POLL_SECONDS = 1.0
RECONNECT_SECONDS = 2.0
_local = threading.Event()


def wake() -> None:
    """Wake this process's scheduler now."""
    _local.set()


def wake_after_commit(uow: UnitOfWork) -> None:
    """Wake schedulers once this unit of work commits (not before: they would find nothing)."""
    sa_event.listen(uow.session, "after_commit", lambda _session: wake(), once=True)
    if not uow.is_sqlite:
        uow.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def sleep(stop: threading.Event, seconds: float, check_every: float) -> None:
    """Sleep up to `seconds`, returning early on a wake-up or stop (checked every `check_every`)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or _local.wait(min(remaining, check_every)):
            break
    _local.clear()


def _conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _listen_once(conninfo: str, stop: threading.Event) -> None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"LISTEN {CHANNEL}")
        while not stop.is_set():
            for _ in connection.notifies(timeout=LISTEN_POLL_SECONDS, stop_after=1):
                wake()


def _listen(conninfo: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            _listen_once(conninfo, stop)
        except psycopg.Error:
            log.warning("wake-up listener lost its connection; reconnecting")
            stop.wait(RECONNECT_SECONDS)


def start_listener(database_url: str, stop: threading.Event) -> threading.Thread | None:
    """PostgreSQL: a daemon thread turning NOTIFYs into wake-ups until `stop`. SQLite: None."""
    if not database_url.startswith("postgresql"):
        return None
    thread = threading.Thread(target=_listen, args=(_conninfo(database_url), stop), name="reminder-wakeup", daemon=True)
    thread.start()
    return thread
