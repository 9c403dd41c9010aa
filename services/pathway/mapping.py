"""Rows <-> engine facts, and the org's pathway parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from services.pathway.rules import Fact, Params, params_for
from shared.db.tables import OrgConfig, PatientUpdate
from shared.db.uow import UnitOfWork


def to_fact(row: PatientUpdate) -> Fact:
    return Fact(id=row.id, type=row.type, occurred_at=row.occurred_at, data=dict(row.data))


def load_facts(uow: UnitOfWork, patient_id: str) -> list[Fact]:
    rows = uow.session.execute(select(PatientUpdate).where(col(PatientUpdate.patient_id) == patient_id)).scalars()
    return [to_fact(row) for row in rows]


def facts_from_updates(updates: Iterable[Any]) -> list[Fact]:
    """What-if input (validated request models) as facts with positional ids."""
    return [
        Fact(
            id=f"u{index}",
            type=update.type,
            occurred_at=update.occurred_at,
            data=update.data.model_dump(mode="json", exclude_none=True),
        )
        for index, update in enumerate(updates)
    ]


def org_params(uow: UnitOfWork, org: str) -> Params:
    config = uow.session.get(OrgConfig, org)
    if config is None:
        return params_for()
    return params_for(config.profile, config.overrides)
