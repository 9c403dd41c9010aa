"""Official fakes of the outbound ports, for tests that exercise the dispatcher without a network:
they record what would have been sent and answer with scripted outcomes (default: success)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage

from services.notifications.channels.policy import Outcome
from services.notifications.channels.senders import Senders


@dataclass
class RecordingWebhookSender:
    script: deque[Outcome] = field(default_factory=deque)
    sent: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        self.sent.append((url, body, headers))
        return self.script.popleft() if self.script else Outcome(ok=True, status_code=204)


@dataclass
class RecordingEmailSender:
    script: deque[Outcome] = field(default_factory=deque)
    sent: list[EmailMessage] = field(default_factory=list)

    def __call__(self, message: EmailMessage) -> Outcome:
        self.sent.append(message)
        return self.script.popleft() if self.script else Outcome(ok=True)


def recording_senders() -> tuple[Senders, RecordingWebhookSender, RecordingEmailSender]:
    webhook, email = RecordingWebhookSender(), RecordingEmailSender()
    return Senders(webhook=webhook, email=email), webhook, email
