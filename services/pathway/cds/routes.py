"""CDS Hooks 2.0 routes (mounted on the intake process by the composition root). Thin: parse, authenticate
(a registered CDS client's JWT or a carepath token), call one use case."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from services.pathway.cds import service
from services.pathway.cds.auth import Caller
from shared.audit import AuditTrail
from shared.fhir import terminology
from shared.web import Responses, no_nul_characters

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], dependencies=[Depends(no_nul_characters)])
AUTH: Responses = {
    401: {"description": "missing or invalid token (CDS client JWT or carepath token)"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
NOT_FOUND: Responses = {404: {"description": "no such CDS service"}}
INVALID: Responses = {422: {"description": "not a CDS Hooks request of this service's hook"}}
UNAVAILABLE: Responses = {503: {"description": "the opioid value sets are not configured (order review only)"}}
ServiceId = Annotated[str, Path(max_length=60, pattern=r"^[a-z0-9-]+$")]


class CdsRequest(BaseModel):
    """A CDS Hooks 2.0 request. `prefetch` may be partial, absent, hold nulls or Bundle-entry wrappers."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(max_length=100)
    hookInstance: str = Field(max_length=100)
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    fhirServer: str | None = Field(None, max_length=2000)
    fhirAuthorization: dict[str, Any] | None = None


class CardsOut(BaseModel):
    cards: list[dict[str, Any]]


def _service(service_id: str) -> dict[str, Any]:
    found = service.SERVICES.get(service_id)
    if found is None:
        raise HTTPException(404, detail="no such CDS service")
    return found


@router.get("", responses=AUTH)
def discovery(principal: Caller) -> dict[str, Any]:
    return service.discovery()


@router.post("/{service_id}", response_model=CardsOut, responses={**AUTH, **NOT_FOUND, **INVALID, **UNAVAILABLE})
async def call_service(service_id: ServiceId, body: CdsRequest, principal: Caller, trail: AuditTrail) -> dict[str, Any]:
    action = f"cds.{service_id}"[:60]
    with trail.failures(principal, action):
        described = _service(service_id)
        if body.hook != described["hook"]:
            raise HTTPException(422, detail=f"this service answers the {described['hook']} hook")
        request = body.model_dump(mode="json")
        use_case = service.patient_view if service_id == service.PATIENT_VIEW else service.order_review
        seen: list[str] = []  # the carepath patient the request's FHIR patient matched (none: no row patient)
        try:
            cards = await run_in_threadpool(use_case, principal, request, seen)
        except terminology.TerminologyUnavailable:
            raise HTTPException(503, detail="the opioid value sets are not configured") from None
        await run_in_threadpool(trail.read, principal, action, patient_id=seen[0] if seen else None)
        return cards


@router.post("/{service_id}/feedback", responses={**AUTH, **NOT_FOUND, **INVALID})
def feedback(
    service_id: ServiceId, principal: Caller, trail: AuditTrail, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Accepted / overridden cards (CDS Hooks 2.0 feedback); an override of a reminder card snoozes or
    dismisses the reminder as its reason says."""
    action = f"cds.{service_id}.feedback"[:60]
    with trail.failures(principal, action):
        _service(service_id)
        try:
            recorded = service.record_feedback(
                principal,
                service_id,
                body,
                # In the feedback's own transaction: one row per patient whose reminder card it names.
                lambda uow, patients: trail.write(uow, principal, action, patient_ids=patients),
            )
        except service.InvalidFeedback as problem:
            raise HTTPException(422, detail=str(problem)) from None
        return {"recorded": recorded}
