"""Bring a database to the current schema (Alembic), used by `carepath migrate` and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def check(url: str) -> None:
    command.check(alembic_config(url))


def head_revision() -> str:
    """The revision the code expects (the newest migration)."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The revision the database is at (None: never migrated). Opens one connection, changes nothing."""
    from shared.db.engine import get_engine  # creates the embedded database's folder, like every other path

    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending_revisions(url: str) -> list[str]:
    """Revisions between the database's and the head, oldest first (with their one-line descriptions)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    current = current_revision(url)
    steps = list(script.iterate_revisions(head_revision(), current))
    return [f"{step.revision} {step.doc}" for step in reversed(steps)]
