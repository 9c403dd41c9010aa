"""Engines per URL. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE so writers serialise cleanly."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from shared.files import private_dir, private_file

READ_ONLY_OPTION = "carepath_read_only"
# A pooled connection idle longer than this is pinged before use (one round trip); one in steady use is not.
PING_IF_IDLE_SECONDS = 2.0
# Persistent connections: at least as many as requests a process runs at once (AnyIO's 40 worker threads
# share them with the event loop's own calls), so a busy process does not open and close connections.
POOL_SIZE = 20
MAX_OVERFLOW = 20
_IDLE_SINCE = "carepath_idle_since"


def _prepare_sqlite(engine: Engine, url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        # A new folder is 0700 (an existing one is the operator's choice); the file is created (or tightened)
        # 0600 before SQLite opens it, and SQLite gives its -wal and -shm files the database file's mode.
        private_dir(Path(database).parent, tighten=False)
        private_file(Path(database))
        for companion in (Path(f"{database}-wal"), Path(f"{database}-shm")):
            if companion.exists():
                companion.chmod(0o600)  # left by an older, laxer version

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: in WAL mode NORMAL may lose the last commits on power loss; a 202 promises the update is stored.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # A writing transaction takes the write lock up front: read-then-write units of work (evaluate a
        # patient, claim reminders) are then serialised instead of failing with SQLITE_BUSY on upgrade.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """hide_parameters: SQL errors end up in logs, and their bound values may be MRNs or clinical data."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)
        _prepare_sqlite(engine, url)
        return engine
    engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, hide_parameters=True)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """`pool_pre_ping`, but only for connections that sat idle in the pool: pre-pinging every checkout was
    one more round trip per transaction (two of a POST's ten). A connection the server dropped while in
    steady use fails its statement instead; SQLAlchemy then invalidates the whole pool (every connection
    older than the failure is replaced on its next checkout) and the request answers 503."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("stale pooled connection") from error  # the pool connects anew
        if not alive:
            raise DisconnectionError("stale pooled connection")
