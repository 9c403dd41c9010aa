"""Re-evaluation runs: re-evaluate every patient of one organisation, in batches, resumable.

A run walks the organisation's patients in id order. Each batch's outbox rows and the run's cursor (the
last patient id enqueued) are written in one transaction, so a run killed at any instant resumes after the
last committed batch: nobody is enqueued twice and nobody is skipped.

The newest run of an organisation that was not superseded also records what was last applied to it: the
rule set version and the digest of its parameters (services/pathway/reevaluation.py compares them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from shared.db.tables.base import new_id, utc_field

RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_SUPERSEDED = "superseded"  # parameters or rules changed again before it finished; a newer run covers all
RUN_STATUSES = (RUN_RUNNING, RUN_DONE, RUN_SUPERSEDED)


class ReevaluationRun(SQLModel, table=True):
    __tablename__ = "reevaluation_run"
    __table_args__ = (
        Index("ix_reevaluation_run_status", "status", "created_at"),
        Index("ix_reevaluation_run_org_created", "org", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    org: str = Field(max_length=100)
    # params_changed | rule_set_changed | manual | baseline (recorded, nothing to do)
    reason: str = Field(max_length=40)
    rule_set_version: str = Field(max_length=40)
    profile: str = Field(max_length=40)
    params_digest: str = Field(max_length=64)
    status: str = Field(default=RUN_RUNNING, max_length=20)
    # The last patient id enqueued (patients are walked in id order); None before the first batch.
    cursor: str | None = Field(default=None, max_length=36)
    enqueued: int = 0
    # Patients of the organisation when the run started (progress display only; new patients may join).
    total: int = 0
    # Patients per second the run may enqueue (live traffic keeps priority).
    rate: float = 50.0
    requested_by: str = Field(default="system", max_length=160)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    finished_at: datetime | None = utc_field(nullable=True)
