"""Channel configuration per organisation: webhook endpoints (with secret rotation) and email recipients.

Everything is looked up within the caller's organisation; another organisation's id is not found.
Deleting is a soft delete (the delivery history keeps its target) that cancels pending deliveries.
Nothing here commits.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from services.notifications.channels import policy, store
from services.notifications.channels.signing import new_secret
from shared import encryption
from shared.clock import isoformat
from shared.db.tables import ChannelDelivery, EmailRecipient, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings
from shared.ssrf import Resolver, check_url, resolve

# Deliberately plain: one @, no spaces or angle brackets (no header injection); the SMTP server judges the rest.
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class ChannelNotFound(LookupError):
    """No such endpoint/recipient in the caller's organisation (HTTP 404)."""


class InvalidChannel(ValueError):
    """Refused configuration: an unsafe URL, a bad address (HTTP 422)."""


SEALED = "sealed:"  # a stored secret encrypted at rest (shared/encryption.py); rows from before 0013 may be plain


def seal(plain: str, settings: Settings | None = None) -> str:
    """A webhook secret as stored: Fernet-encrypted with CAREPATH_ENCRYPTION_KEYS (or the derived key)."""
    return SEALED + encryption.encrypt(settings or get_settings(), plain)


def plain_secret(stored: str, settings: Settings | None = None) -> str:
    """The secret itself, for signing (HMAC needs it) or for showing once on creation and rotation."""
    if not stored.startswith(SEALED):
        return stored
    return encryption.decrypt(settings or get_settings(), stored[len(SEALED) :])


def reseal(stored: str, settings: Settings | None = None) -> str:
    """The stored secret encrypted under the newest key (after a key rotation; plain rows get sealed)."""
    if not stored.startswith(SEALED):
        return seal(stored, settings)
    return SEALED + encryption.reencrypt(settings or get_settings(), stored[len(SEALED) :])


def endpoint_view(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "escalation": endpoint.escalation,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_expires_at": isoformat(endpoint.previous_secret_expires_at),
        "created_at": isoformat(endpoint.created_at),
    }
    if with_secret:
        view["secret"] = plain_secret(endpoint.secret)
    return view


def recipient_view(recipient: EmailRecipient) -> dict[str, Any]:
    return {
        "id": recipient.id,
        "address": recipient.address,
        "escalation": recipient.escalation,
        "created_at": isoformat(recipient.created_at),
    }


def create_endpoint(
    uow: UnitOfWork,
    org: str,
    url: str,
    description: str,
    escalation: bool,
    now: datetime,
    *,
    allow_private: bool,
    resolver: Resolver = resolve,
) -> WebhookEndpoint:
    try:
        checked = check_url(url, allow_private, resolver)
    except ValueError as exc:
        raise InvalidChannel(str(exc)) from None
    endpoint = WebhookEndpoint(
        org=org,
        url=checked,
        description=description,
        escalation=escalation,
        secret=seal(new_secret(), uow.settings),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(endpoint)
    uow.session.flush()
    return endpoint


def list_endpoints(uow: UnitOfWork, org: str) -> list[WebhookEndpoint]:
    statement = select(WebhookEndpoint).where(
        col(WebhookEndpoint.org) == org, col(WebhookEndpoint.status) != store.DELETED
    )
    return list(uow.session.execute(statement.order_by(col(WebhookEndpoint.created_at))).scalars())


def get_endpoint(uow: UnitOfWork, org: str, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
    endpoint = store.lock_endpoint(uow, endpoint_id) if for_update else uow.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.org != org or endpoint.status == store.DELETED:
        raise ChannelNotFound(endpoint_id)
    return endpoint


def delete_endpoint(uow: UnitOfWork, org: str, endpoint_id: str, now: datetime) -> None:
    endpoint = get_endpoint(uow, org, endpoint_id, for_update=True)
    endpoint.status = store.DELETED
    endpoint.updated_at = now
    uow.session.flush()
    store.close_pending_for(uow, endpoint.id, store.CANCELLED, "endpoint deleted", now)


def rotate_secret(uow: UnitOfWork, org: str, endpoint_id: str, now: datetime) -> WebhookEndpoint:
    """Issue a new secret; the old one keeps signing (alongside) for policy.ROTATION_OVERLAP."""
    endpoint = get_endpoint(uow, org, endpoint_id, for_update=True)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + policy.ROTATION_OVERLAP
    endpoint.secret = seal(new_secret(), uow.settings)
    endpoint.updated_at = now
    uow.session.flush()
    return endpoint


def enable_endpoint(uow: UnitOfWork, org: str, endpoint_id: str, now: datetime) -> WebhookEndpoint:
    """Re-enable a disabled endpoint (after its owner fixed the receiver); new events reach it again."""
    endpoint = get_endpoint(uow, org, endpoint_id, for_update=True)
    endpoint.status = store.ACTIVE
    endpoint.failing_since = None
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.updated_at = now
    uow.session.flush()
    return endpoint


def create_recipient(uow: UnitOfWork, org: str, address: str, escalation: bool, now: datetime) -> EmailRecipient:
    address = address.strip()
    if len(address) > 320 or not EMAIL_PATTERN.match(address):
        raise InvalidChannel("address is not a valid email address")
    recipient = EmailRecipient(org=org, address=address, escalation=escalation, created_at=now)
    uow.session.add(recipient)
    uow.session.flush()
    return recipient


def list_recipients(uow: UnitOfWork, org: str) -> list[EmailRecipient]:
    statement = select(EmailRecipient).where(
        col(EmailRecipient.org) == org, col(EmailRecipient.status) != store.DELETED
    )
    return list(uow.session.execute(statement.order_by(col(EmailRecipient.created_at))).scalars())


def delete_recipient(uow: UnitOfWork, org: str, recipient_id: str, now: datetime) -> None:
    recipient = uow.session.get(EmailRecipient, recipient_id)
    if recipient is None or recipient.org != org or recipient.status == store.DELETED:
        raise ChannelNotFound(recipient_id)
    recipient.status = store.DELETED
    uow.session.flush()
    store.close_pending_for(uow, recipient.id, store.CANCELLED, "recipient deleted", now)


def delivery_view(delivery: ChannelDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.message_id,
        "event_type": delivery.event_type,
        "event_id": delivery.event_id,
        "reminder_id": delivery.reminder_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": isoformat(delivery.next_attempt_at),
        "last_attempt_at": isoformat(delivery.last_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": isoformat(delivery.delivered_at),
        "created_at": isoformat(delivery.created_at),
    }


def recent_deliveries(uow: UnitOfWork, org: str, endpoint_id: str, limit: int) -> list[ChannelDelivery]:
    """The endpoint's latest deliveries, newest first (for "why did my receiver not get it?")."""
    endpoint = get_endpoint(uow, org, endpoint_id)
    statement = (
        select(ChannelDelivery)
        .where(col(ChannelDelivery.target_id) == endpoint.id, col(ChannelDelivery.org) == org)
        .order_by(col(ChannelDelivery.id).desc())
        .limit(limit)
    )
    return list(uow.session.execute(statement).scalars())
