"""Claim rows for one worker among many: PostgreSQL locks the candidates with FOR UPDATE SKIP LOCKED (so
several relays/schedulers share the work); SQLite, whose writing transactions already hold the database
lock (BEGIN IMMEDIATE), updates them with one conditional UPDATE … WHERE id IN (SELECT … LIMIT n)
RETURNING (SQLAlchemy silently drops SKIP LOCKED there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, select, update

from shared.db.uow import UnitOfWork


def claim_rows(
    uow: UnitOfWork,
    table: Table,
    condition: ColumnElement[bool],
    order_by: ColumnElement[Any],
    limit: int,
    values: dict[str, Any],
    returning: Sequence[ColumnElement[Any]],
) -> Sequence[Row[Any]]:
    """UPDATE up to `limit` rows matching `condition` (oldest by `order_by` first) with `values`, returning
    `returning` of each claimed row."""
    candidates = select(table.c.id).where(condition).order_by(order_by).limit(limit)
    if uow.is_sqlite:
        target = table.c.id.in_(candidates.scalar_subquery())
    else:
        ids = list(uow.session.execute(candidates.with_for_update(skip_locked=True)).scalars())
        if not ids:
            return []
        target = table.c.id.in_(ids)
    return uow.session.execute(update(table).where(target).values(**values).returning(*returning)).all()
