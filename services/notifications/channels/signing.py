"""Standard Webhooks signing: `webhook-id`, `webhook-timestamp`, `webhook-signature` (v1, HMAC-SHA256).

During a secret rotation the signature header carries one signature per live secret, space-separated,
so a receiver verifies with whichever secret it currently holds.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime
from math import floor

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def signature_header(message_id: str, timestamp: datetime, body: str, signing_secrets: list[str]) -> str:
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in signing_secrets)


def webhook_headers(message_id: str, timestamp: datetime, body: str, signing_secrets: list[str]) -> dict[str, str]:
    """The headers of one attempt; `timestamp` is the moment of sending (receivers allow ±5 minutes)."""
    if not signing_secrets:
        raise ValueError("at least one signing secret is required")
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(floor(timestamp.timestamp())),
        "webhook-signature": signature_header(message_id, timestamp, body, signing_secrets),
        "content-type": "application/json",
        "user-agent": "carepath-webhooks/1",
    }
