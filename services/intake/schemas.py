"""Intake request and response models; the update types themselves are shared (shared/updates.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from shared.updates import Strict, UpdateIn

__all__ = ["BatchAccepted", "BatchIn", "PatientIn", "PatientOut", "UpdateAccepted", "UpdateIn", "update_payload"]


class BatchIn(Strict):
    updates: list[UpdateIn] = Field(min_length=1, max_length=500)


class PatientIn(Strict):
    external_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]


class PatientOut(BaseModel):
    id: str
    external_id: str


class UpdateAccepted(BaseModel):
    update_id: str
    event_id: str


class BatchAccepted(BaseModel):
    event_id: str
    updates: list[UpdateAccepted]


def update_payload(update: Any) -> dict[str, Any]:
    """The stored form of a validated update: data without unset optional fields' defaults spelled out."""
    return update.data.model_dump(mode="json", exclude_none=True)
