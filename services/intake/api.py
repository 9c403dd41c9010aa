"""Intake HTTP routes: thin adapters (parse, check identity, call one handler, map errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.intake import group_commit, handlers, idempotency
from services.intake.schemas import BatchAccepted, BatchIn, PatientIn, PatientOut, UpdateAccepted, UpdateIn
from shared import audit
from shared.audit import AuditTrail
from shared.auth import Principal, require
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.web import Responses, check_instant, no_nul_characters

router = APIRouter(prefix="/v1", dependencies=[Depends(no_nul_characters)])
Caller = Annotated[Principal, Depends(require())]
Writer = Annotated[Principal, Depends(require("client", "coordinator", "ops"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]

NOT_FOUND: Responses = {404: {"description": "no such patient in your organisation"}}
AUTH: Responses = {
    401: {"description": "missing or invalid token"},
    403: {"description": "role not allowed"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
IDEMPOTENCY: Responses = {
    409: {"description": "the same Idempotency-Key is still in flight"},
    422: {"description": "invalid update, or Idempotency-Key reused with another body"},
}


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")


@router.post(
    "/patients",
    status_code=201,
    response_model=PatientOut,
    responses={**AUTH, 409: {"description": "external_id exists; body carries the existing id"}},
)
def create_patient(body: PatientIn, principal: Writer, trail: AuditTrail) -> Any:
    with trail.failures(principal, "patient.create"), UnitOfWork() as uow:
        try:
            patient = handlers.create_patient(uow, principal, body.external_id)
        except handlers.DuplicatePatient as duplicate:
            trail.write(
                uow,
                principal,
                "patient.create",
                outcome=audit.INVALID,
                status_code=409,
                patient_id=duplicate.existing_id,
            )
            uow.commit()
            return JSONResponse(
                {"detail": "patient exists", "id": duplicate.existing_id, "external_id": body.external_id},
                status_code=409,
            )
        trail.write(uow, principal, "patient.create", patient_id=patient.id, resource=("patient", patient.id))
        uow.commit()
        return PatientOut(id=patient.id, external_id=patient.external_id)


def _idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    body: Any,
    work: Callable[[UnitOfWork], dict[str, Any]],
    trail: audit.Audit,
    action: str,
    patient_id: str,
) -> Any:
    with trail.failures(principal, action, patient_id=patient_id):
        return _run_idempotent(request, principal, key, body, work, trail, action, patient_id)


def _run_idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    body: Any,
    work: Callable[[UnitOfWork], dict[str, Any]],
    trail: audit.Audit,
    action: str,
    patient_id: str,
) -> Any:
    settings = get_settings()
    if key is not None:
        digest = idempotency.request_hash(request.method, request.url.path, body)
        try:
            replay = idempotency.claim(settings, principal.org, key, digest)
        except idempotency.KeyInFlight:
            raise HTTPException(409, detail="a request with this Idempotency-Key is in flight") from None
        except idempotency.KeyReusedWithOtherBody:
            raise HTTPException(422, detail="Idempotency-Key was used with a different request body") from None
        if replay is not None:  # the first answer again: nothing new is stored
            trail.read(principal, f"{action}.replay", patient_id=patient_id, status_code=replay.status_code)
            return JSONResponse(replay.body, status_code=replay.status_code)
    try:
        with UnitOfWork(settings) as uow:
            response = work(uow)
            trail.write(uow, principal, action, patient_id=patient_id, resource=("event", response.get("event_id")))
            if key is not None:
                idempotency.complete(uow, principal.org, key, 202, response)
            uow.commit()
    except BaseException:
        if key is not None:
            idempotency.release(settings, principal.org, key)
        raise
    return JSONResponse(response, status_code=202)


@router.post(
    "/patients/{patient_id}/updates",
    status_code=202,
    response_model=UpdateAccepted,
    responses={**AUTH, **NOT_FOUND, **IDEMPOTENCY},
)
async def post_update(
    patient_id: str,
    update: UpdateIn,
    request: Request,
    principal: Writer,
    trail: AuditTrail,
    key: IdempotencyKey = None,  # type: ignore[valid-type]
) -> Any:
    """Async: the common case awaits the group-commit writer (no thread-pool trip); with an Idempotency-Key
    the work (claim, store, complete, all sync) runs in the thread pool as a sync route would."""
    check_instant(update.occurred_at, ("body", "occurred_at"))
    if key is None:  # the common case: committed together with the updates arriving with it
        async with trail.async_failures(principal, "update.create", patient_id=patient_id):
            try:
                stored = await group_commit.store_update(
                    get_settings(), principal, patient_id, update, trail, "update.create"
                )
            except handlers.PatientNotFound:
                raise _not_found() from None
        return JSONResponse(stored, status_code=202)

    def work(uow: UnitOfWork) -> dict[str, Any]:
        try:
            ids, event_id = handlers.record_updates(uow, principal, patient_id, [update])
        except handlers.PatientNotFound:
            raise _not_found() from None
        return {"update_id": ids[0], "event_id": event_id}

    return await run_in_threadpool(
        _idempotent, request, principal, key, update.model_dump(mode="json"), work, trail, "update.create", patient_id
    )


@router.post(
    "/patients/{patient_id}/updates:batch",
    status_code=202,
    response_model=BatchAccepted,
    responses={**AUTH, **NOT_FOUND, **IDEMPOTENCY},
)
def post_batch(
    patient_id: str,
    batch: BatchIn,
    request: Request,
    principal: Writer,
    trail: AuditTrail,
    key: IdempotencyKey = None,
) -> Any:
    for index, item in enumerate(batch.updates):
        check_instant(item.occurred_at, ("body", "updates", index, "occurred_at"))

    def work(uow: UnitOfWork) -> dict[str, Any]:
        try:
            ids, event_id = handlers.record_updates(uow, principal, patient_id, batch.updates)
        except handlers.PatientNotFound:
            raise _not_found() from None
        return {"event_id": event_id, "updates": [{"update_id": i, "event_id": event_id} for i in ids]}

    return _idempotent(request, principal, key, batch.model_dump(mode="json"), work, trail, "update.batch", patient_id)
