"""The outbound ports: send one webhook, send one email. Each returns an Outcome value; none raises for
a receiver's failure (that is the policy's business), and none touches the database."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import httpx

from services.notifications.channels.policy import Outcome
from shared.settings import Settings
from shared.ssrf import PinnedTransport

# Short: a slow receiver must not hold up the others; it is retried later like a down one.
HTTP_TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=3.0)
SMTP_TIMEOUT = 15.0
MAX_ERROR = 300


class WebhookSender(Protocol):
    def __call__(self, url: str, body: str, headers: dict[str, str]) -> Outcome: ...


class EmailSender(Protocol):
    def __call__(self, message: EmailMessage) -> Outcome: ...


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def http_outcome(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome(ok=True, status_code=status_code)
    if status_code == 410:  # Gone: the receiver asks us to stop (as Stripe and Svix honour it)
        return Outcome(ok=False, status_code=410, error="HTTP 410 Gone", permanent=True, disable_target=True)
    return Outcome(ok=False, status_code=status_code, error=f"HTTP {status_code}")


class HttpWebhookSender:
    """httpx with short timeouts, no redirects (a redirect could point inside) and pinned, checked addresses.
    One client (and connection pool) per sender; httpx clients are safe to share between threads."""

    def __init__(self, allow_private: bool) -> None:
        self.client = httpx.Client(
            transport=PinnedTransport(allow_private), timeout=HTTP_TIMEOUT, follow_redirects=False, trust_env=False
        )

    def __call__(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        try:
            response = self.client.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(ok=False, error=_short(f"{type(exc).__name__}: {exc}"))
        return http_outcome(response.status_code)

    def close(self) -> None:
        self.client.close()


@dataclass
class SmtpEmailSender:
    host: str
    port: int

    def __call__(self, message: EmailMessage) -> Outcome:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            return Outcome(
                ok=False, status_code=exc.smtp_code, error=_short(f"SMTP {exc.smtp_code}"), permanent=permanent
            )
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)
            return Outcome(ok=False, error=_short(f"recipient refused {codes}"), permanent=permanent)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return Outcome(ok=False, error=_short(f"{type(exc).__name__}: {exc}"))
        return Outcome(ok=True)


@dataclass
class Senders:
    webhook: WebhookSender
    email: EmailSender

    def close(self) -> None:
        close = getattr(self.webhook, "close", None)
        if close is not None:
            close()


def real_senders(settings: Settings) -> Senders:
    return Senders(
        webhook=HttpWebhookSender(settings.allow_private_webhooks),
        email=SmtpEmailSender(settings.smtp_host, settings.smtp_port),
    )
