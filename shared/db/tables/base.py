"""Shared column helpers and the metadata naming convention (stable constraint names for Alembic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table
from sqlmodel import Field, SQLModel

from shared.db.types import UTCDateTime

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = SQLModel.metadata


def new_id() -> str:
    return str(uuid.uuid4())


def utc_field(*, nullable: bool = False, index: bool = False, default: Any = ...) -> Any:
    if nullable and default is ...:
        default = None
    return Field(default=default, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_field(*, default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON, nullable=False)


__all__ = ["Field", "SQLModel", "datetime", "json_field", "metadata", "new_id", "utc_field"]


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel table class (for bulk inserts and updates); typed, unlike `__table__`."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table
