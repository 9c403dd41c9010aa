"""Pathway HTTP routes (mounted on the intake process by the composition root): the current assessment, its
history and the what-if. Thin adapters: parse, check identity, call one query, map errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import Field

from services.pathway import queries
from services.pathway.mapping import facts_from_updates, org_params
from services.pathway.rules import evaluate
from shared import abuse
from shared.audit import AuditTrail
from shared.auth import Principal, require
from shared.clock import utcnow
from shared.db.uow import UnitOfWork
from shared.patients import PatientNotFound, find_patient
from shared.updates import Instant, Strict, UpdateIn
from shared.web import Responses, check_instant, no_nul_characters

router = APIRouter(prefix="/v1", dependencies=[Depends(no_nul_characters)])
Caller = Annotated[Principal, Depends(require())]
NOT_FOUND: Responses = {404: {"description": "no such patient in your organisation"}}
AUTH: Responses = {
    401: {"description": "missing or invalid token"},
    403: {"description": "role not allowed"},
    429: {"description": "rate limit exceeded, or too many what-if evaluations at once (see Retry-After)"},
}


class EvaluateIn(Strict):
    updates: list[UpdateIn] = Field(max_length=2000)
    now: Instant | None = None


def _not_found() -> HTTPException:
    return HTTPException(404, detail="patient not found")


@router.get("/patients/{patient_id}/pathway", responses={**AUTH, **NOT_FOUND})
def get_pathway(patient_id: str, principal: Caller, trail: AuditTrail) -> dict[str, Any]:
    with trail.failures(principal, "pathway.read", patient_id=patient_id):
        with UnitOfWork(read_only=True) as uow:
            try:
                patient = find_patient(uow, principal.org, patient_id)
            except PatientNotFound:
                raise _not_found() from None
            result = queries.current_pathway(uow, patient)
        trail.read(principal, "pathway.read", patient_id=patient_id)
        return result


@router.get(
    "/patients/{patient_id}/pathway/history",
    responses={**AUTH, **NOT_FOUND, 422: {"description": "bad cursor or limit"}},
)
def get_pathway_history(
    patient_id: str,
    principal: Caller,
    trail: AuditTrail,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # Only what the service issues (a sequence number): ASCII digits, within a 64-bit integer.
    cursor: Annotated[str | None, Query(max_length=18, pattern=r"^[0-9]*$")] = None,
) -> dict[str, Any]:
    """The stored assessments, newest first, each with what changed; `next_cursor` pages to older ones."""
    with trail.failures(principal, "pathway.history", patient_id=patient_id):
        with UnitOfWork(read_only=True) as uow:
            try:
                patient = find_patient(uow, principal.org, patient_id)
                page = queries.pathway_history_page(uow, patient, limit=limit, cursor=cursor)
            except PatientNotFound:
                raise _not_found() from None
            except queries.BadCursor:
                raise HTTPException(422, detail="cursor is not one this service issued") from None
        trail.read(principal, "pathway.history", patient_id=patient_id)
        return page


@router.post(
    "/pathway:evaluate",
    responses={**AUTH, 413: {"description": "what-if body too large"}, 422: {"description": "invalid updates"}},
    dependencies=[Depends(abuse.what_if_body_cap)],
)
def what_if(body: EvaluateIn, principal: Caller, trail: AuditTrail) -> dict[str, Any]:
    """Hypothetical updates, no patient: nothing is read or stored but the organisation's configuration.
    At most `CAREPATH_WHAT_IF_CONCURRENCY` run at once in a process (429 beyond)."""
    with trail.failures(principal, "pathway.what_if"):
        check_instant(body.now, ("body", "now"))
        for index, update in enumerate(body.updates):
            check_instant(update.occurred_at, ("body", "updates", index, "occurred_at"))
        with abuse.what_if_slot():
            with UnitOfWork(read_only=True) as uow:
                params = org_params(uow, principal.org)
            result = evaluate(facts_from_updates(body.updates), body.now or utcnow(), params).to_dict()
        trail.read(principal, "pathway.what_if")
        return result
