"""Channel configuration routes (thin: parse, check identity, call one handler, map errors)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from services.notifications.channels import config
from shared.audit import AuditTrail
from shared.auth import Principal, require
from shared.clock import utcnow
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.web import no_nul_characters

router = APIRouter(tags=["channels"], dependencies=[Depends(no_nul_characters)])
Manager = Annotated[Principal, Depends(require("ops", "coordinator"))]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "the token's role may not configure channels"},
    422: {"description": "invalid request"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such channel in the token's organisation"}}


class EndpointIn(BaseModel):
    url: str = Field(max_length=2000, description="https URL; loopback/private addresses are refused")
    description: str = Field("", max_length=200)
    escalation: bool = Field(False, description="true: receives carepath.reminder.escalated instead of .due")


class RecipientIn(BaseModel):
    address: str = Field(max_length=320)
    escalation: bool = Field(False, description="true: receives escalations instead of due reminders")


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")


@router.post("/v1/webhook-endpoints", status_code=201, responses=AUTH_ERRORS)
def create_endpoint(body: EndpointIn, principal: Manager, trail: AuditTrail) -> dict[str, Any]:
    """Register an endpoint. The response carries the signing secret (`whsec_…`): it is shown only here."""
    settings = get_settings()
    with trail.failures(principal, "config.webhook.create"), UnitOfWork(settings) as uow:
        try:
            endpoint = config.create_endpoint(
                uow,
                principal.org,
                body.url,
                body.description,
                body.escalation,
                utcnow(),
                allow_private=settings.allow_private_webhooks,
            )
        except config.InvalidChannel as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
        trail.write(uow, principal, "config.webhook.create", resource=("webhook_endpoint", endpoint.id))
        uow.commit()
        return config.endpoint_view(endpoint, with_secret=True)


@router.get("/v1/webhook-endpoints", responses=AUTH_ERRORS)
def list_endpoints(principal: Manager) -> dict[str, Any]:
    with UnitOfWork(read_only=True) as uow:
        return {"items": [config.endpoint_view(e) for e in config.list_endpoints(uow, principal.org)]}


@router.get("/v1/webhook-endpoints/{endpoint_id}", responses={**AUTH_ERRORS, **NOT_FOUND})
def get_endpoint(endpoint_id: str, principal: Manager) -> dict[str, Any]:
    with UnitOfWork(read_only=True) as uow:
        try:
            return config.endpoint_view(config.get_endpoint(uow, principal.org, endpoint_id))
        except config.ChannelNotFound:
            raise _not_found() from None


@router.delete("/v1/webhook-endpoints/{endpoint_id}", status_code=204, responses={**AUTH_ERRORS, **NOT_FOUND})
def delete_endpoint(endpoint_id: str, principal: Manager, trail: AuditTrail) -> Response:
    resource = ("webhook_endpoint", endpoint_id)
    with trail.failures(principal, "config.webhook.delete", resource=resource), UnitOfWork() as uow:
        try:
            config.delete_endpoint(uow, principal.org, endpoint_id, utcnow())
        except config.ChannelNotFound:
            raise _not_found() from None
        trail.write(uow, principal, "config.webhook.delete", resource=resource)
        uow.commit()
    return Response(status_code=204)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", responses={**AUTH_ERRORS, **NOT_FOUND})
def rotate_secret(endpoint_id: str, principal: Manager, trail: AuditTrail) -> dict[str, Any]:
    """Issue a new secret (returned once). The old one keeps signing alongside it for 24 hours."""
    resource = ("webhook_endpoint", endpoint_id)
    with trail.failures(principal, "config.webhook.rotate_secret", resource=resource), UnitOfWork() as uow:
        try:
            endpoint = config.rotate_secret(uow, principal.org, endpoint_id, utcnow())
        except config.ChannelNotFound:
            raise _not_found() from None
        trail.write(uow, principal, "config.webhook.rotate_secret", resource=resource)
        uow.commit()
        return config.endpoint_view(endpoint, with_secret=True)


@router.post("/v1/webhook-endpoints/{endpoint_id}/enable", responses={**AUTH_ERRORS, **NOT_FOUND})
def enable_endpoint(endpoint_id: str, principal: Manager, trail: AuditTrail) -> dict[str, Any]:
    """Re-enable an endpoint that was disabled after persistent failure."""
    resource = ("webhook_endpoint", endpoint_id)
    with trail.failures(principal, "config.webhook.enable", resource=resource), UnitOfWork() as uow:
        try:
            endpoint = config.enable_endpoint(uow, principal.org, endpoint_id, utcnow())
        except config.ChannelNotFound:
            raise _not_found() from None
        trail.write(uow, principal, "config.webhook.enable", resource=resource)
        uow.commit()
        return config.endpoint_view(endpoint)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", responses={**AUTH_ERRORS, **NOT_FOUND})
def list_deliveries(
    endpoint_id: str, principal: Manager, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    """The endpoint's latest deliveries, newest first: status, attempts, next attempt, last error."""
    with UnitOfWork(read_only=True) as uow:
        try:
            rows = config.recent_deliveries(uow, principal.org, endpoint_id, limit)
        except config.ChannelNotFound:
            raise _not_found() from None
        return {"items": [config.delivery_view(row) for row in rows]}


@router.post("/v1/email-recipients", status_code=201, responses=AUTH_ERRORS)
def create_recipient(body: RecipientIn, principal: Manager, trail: AuditTrail) -> dict[str, Any]:
    with trail.failures(principal, "config.email.create"), UnitOfWork() as uow:
        try:
            recipient = config.create_recipient(uow, principal.org, body.address, body.escalation, utcnow())
        except config.InvalidChannel as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
        trail.write(uow, principal, "config.email.create", resource=("email_recipient", recipient.id))
        uow.commit()
        return config.recipient_view(recipient)


@router.get("/v1/email-recipients", responses=AUTH_ERRORS)
def list_recipients(principal: Manager) -> dict[str, Any]:
    with UnitOfWork(read_only=True) as uow:
        return {"items": [config.recipient_view(r) for r in config.list_recipients(uow, principal.org)]}


@router.delete("/v1/email-recipients/{recipient_id}", status_code=204, responses={**AUTH_ERRORS, **NOT_FOUND})
def delete_recipient(recipient_id: str, principal: Manager, trail: AuditTrail) -> Response:
    resource = ("email_recipient", recipient_id)
    with trail.failures(principal, "config.email.delete", resource=resource), UnitOfWork() as uow:
        try:
            config.delete_recipient(uow, principal.org, recipient_id, utcnow())
        except config.ChannelNotFound:
            raise _not_found() from None
        trail.write(uow, principal, "config.email.delete", resource=resource)
        uow.commit()
    return Response(status_code=204)
