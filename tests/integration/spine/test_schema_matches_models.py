"""The migrations build exactly the schema the SQLModel tables declare (columns, types, nullability,
indexes, constraints), on both backends: a column or index added to a table without its migration — or a
migration without the model change — fails here instead of in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Index, Integer, MetaData, Table, create_engine
from sqlmodel import SQLModel

import shared.db.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from shared.settings import Settings


def _differences(url: str, metadata: MetaData) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))
    finally:
        engine.dispose()


def test_migrated_database_matches_the_models(settings: Settings) -> None:
    assert _differences(settings.effective_database_url, SQLModel.metadata) == []


def test_the_comparison_finds_a_missing_index(settings: Settings) -> None:
    """The check can fail: a model with an index the migrations never made is reported."""
    extra = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(extra)
    Index("ix_not_migrated", extra.tables["reminder"].c.kind, extra.tables["reminder"].c.text)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    found = {(d[0], d[1].name) for d in _differences(settings.effective_database_url, extra) if isinstance(d, tuple)}
    assert found == {("add_table", "not_migrated"), ("add_index", "ix_not_migrated")}
