"""Engines per URL. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE so writers serialise cleanly."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from shared.files import private_dir, private_file

READ_ONLY_OPTION = "carepath_read_only"


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
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)
