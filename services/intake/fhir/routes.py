"""FHIR R4 routes of the intake service: POST /fhir/r4 (transaction/batch Bundles), GET /fhir/r4/metadata,
GET /fhir/r4/CarePlan?patient=…. Thin adapters: parse, check identity, call one use case, map errors."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from services.intake import idempotency
from services.intake.fhir import bundle, capability, careplan
from services.intake.fhir.outcome import error, operation_outcome
from shared import audit
from shared.audit import AuditTrail
from shared.auth import Principal, require
from shared.db.uow import UnitOfWork
from shared.fhir import terminology
from shared.settings import get_settings
from shared.web import Responses, no_nul_characters

log = logging.getLogger("carepath.fhir")
FHIR_JSON = "application/fhir+json"
router = APIRouter(prefix="/fhir/r4", tags=["fhir"], dependencies=[Depends(no_nul_characters)])
Caller = Annotated[Principal, Depends(require())]
Writer = Annotated[Principal, Depends(require("client", "coordinator", "ops"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]

AUTH: Responses = {
    401: {"description": "missing or invalid token"},
    403: {"description": "role not allowed"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
_OBJECT = {"type": "object", "additionalProperties": True}
_FHIR_CONTENT = {FHIR_JSON: {"schema": _OBJECT}, "application/json": {"schema": _OBJECT}}


ACTION = "fhir.bundle"


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _outcome(status_code: int, expression: str, message: str, code: str) -> FhirResponse:
    return FhirResponse(operation_outcome([error(expression, message, code)]), status_code=status_code)


@router.post(
    "",
    response_class=FhirResponse,
    responses={
        200: {"description": "transaction-response or batch-response Bundle", "content": _FHIR_CONTENT},
        **AUTH,
        409: {
            "description": "a concurrent request recorded the same resource or patient; retry",
            "content": _FHIR_CONTENT,
        },
        415: {"description": "not application/fhir+json or application/json", "content": _FHIR_CONTENT},
        422: {
            "description": "OperationOutcome: invalid Bundle, invalid transaction entry, or nothing maps",
            "content": _FHIR_CONTENT,
        },
        503: {"description": "the opioid value sets are not configured: nothing stored", "content": _FHIR_CONTENT},
    },
    openapi_extra={"requestBody": {"required": True, "content": _FHIR_CONTENT}},
)
async def post_bundle(request: Request, principal: Writer, trail: AuditTrail, key: IdempotencyKey = None) -> Any:
    """The Idempotency-Key works as on the native routes (same key + same body → the first answer again);
    without one, resource identity and version already make a re-sent Bundle store nothing new."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (FHIR_JSON, "application/json"):
        await run_in_threadpool(trail.read, principal, ACTION, outcome=audit.INVALID, status_code=415)
        return _outcome(415, "Bundle", "send the Bundle as application/fhir+json or application/json", "not-supported")
    raw = await request.body()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        await run_in_threadpool(trail.read, principal, ACTION, outcome=audit.INVALID, status_code=422)
        return _outcome(422, "Bundle", "the body is not JSON", "structure")
    try:
        cds = terminology.configured()
    except terminology.TerminologyUnavailable:  # medications cannot be classified: refuse rather than guess
        await run_in_threadpool(trail.read, principal, ACTION, outcome=audit.ERROR, status_code=503)
        return _outcome(
            503, "Bundle", "the opioid value sets are not configured (CAREPATH_OPIOID_CDS_DIR)", "transient"
        )
    settings = get_settings()

    def work() -> bundle.Result:
        if key is not None:
            digest = idempotency.request_hash(request.method, request.url.path, document)
            try:
                replay = idempotency.claim(settings, principal.org, key, digest)
            except idempotency.KeyInFlight:
                return bundle.Result(
                    409, operation_outcome([error("Bundle", "this Idempotency-Key is in flight", "conflict")])
                )
            except idempotency.KeyReusedWithOtherBody:
                issue = error("Bundle", "this Idempotency-Key was used with another body", "business-rule")
                return bundle.Result(422, operation_outcome([issue]))
            if replay is not None:
                trail.read(principal, f"{ACTION}.replay", status_code=replay.status_code)
                return bundle.Result(replay.status_code, replay.body)
        try:
            with UnitOfWork(settings) as uow:
                try:
                    result = bundle.process(uow, principal, cds, document)
                except bundle.BundleRefused as refused:
                    result = bundle.Result(422, operation_outcome(refused.issues))
                if result.status_code == 200:
                    # One row per patient the Bundle recorded data for (one without a patient if none).
                    trail.write(uow, principal, ACTION, patient_ids=result.patient_ids, status_code=200)
                    if key is not None:
                        idempotency.complete(uow, principal.org, key, 200, result.body)
                    uow.commit()
                    return result
            if key is not None:
                idempotency.release(settings, principal.org, key)
            trail.read(principal, ACTION, outcome=audit.outcome_of(result.status_code), status_code=result.status_code)
            return result
        except BaseException:
            if key is not None:
                idempotency.release(settings, principal.org, key)
            raise

    with trail.failures(principal, ACTION):
        try:
            result = await run_in_threadpool(work)
        except IntegrityError:
            log.info("fhir bundle raced another request on the same resource or patient")
            await run_in_threadpool(trail.read, principal, ACTION, outcome=audit.INVALID, status_code=409)
            return _outcome(
                409, "Bundle", "a concurrent request recorded the same resource or patient; retry", "conflict"
            )
    return FhirResponse(result.body, status_code=result.status_code)


@router.get(
    "/metadata",
    response_class=FhirResponse,
    responses={200: {"description": "CapabilityStatement", "content": _FHIR_CONTENT}},
)
def metadata() -> Any:
    from importlib.metadata import PackageNotFoundError, version

    try:
        software = version("carepath")
    except PackageNotFoundError:
        software = "0"
    return FhirResponse(capability.capability_statement(software))


@router.get(
    "/CarePlan",
    response_class=FhirResponse,
    responses={
        200: {
            "description": "searchset Bundle: the patient's current pathway CarePlan (none for an unknown patient)",
            "content": _FHIR_CONTENT,
        },
        **AUTH,
        422: {"description": "patient parameter missing or invalid"},
    },
)
def search_careplan(
    principal: Caller, trail: AuditTrail, patient: Annotated[str, Query(min_length=1, max_length=200)]
) -> Any:
    with UnitOfWork(read_only=True) as uow:
        found = careplan.find_patient_for_search(uow, principal.org, patient)
        plan = careplan.careplan(uow, found) if found is not None else None
        found_id = found.id if found is not None else None
    trail.read(
        principal,
        "fhir.careplan.search",
        outcome=audit.SUCCESS if found_id is not None else audit.NOT_FOUND,
        patient_id=found_id,
    )
    return FhirResponse(careplan.searchset([plan] if plan else []))
