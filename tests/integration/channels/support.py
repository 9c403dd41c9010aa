"""Helpers of the channel tests: a real HTTP receiver that verifies Standard Webhooks signatures, seeded
reminders, tokens, free ports."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.auth import create_token
from shared.clock import utcnow
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork
from shared.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def auth(settings: Settings, org: str, role: str = "ops") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, role)}"}


def seed_reminder(
    settings: Settings,
    org: str = "org-a",
    kind: str = "opioid_review_4w",
    status: str = "due",
    due_at: datetime | None = None,
    text: str = "4-week opioid reassessment due: review benefit, harms and whether to continue",
    citation: str = "G3",
    next_action_at: datetime | None = None,
) -> Reminder:
    now = utcnow()
    due_at = due_at or now - timedelta(days=1)
    with UnitOfWork(settings) as uow:
        patient = Patient(org=org, external_id=f"MRN-SECRET-{now.timestamp()}-{kind}-{status}", created_at=now)
        uow.session.add(patient)
        uow.session.flush()
        reminder = Reminder(
            org=org,
            patient_id=patient.id,
            kind=kind,
            due_at=due_at,
            status=status,
            text=text,
            citation=citation,
            delivered_at=now if status != "scheduled" else None,
            created_at=now,
            updated_at=now,
            next_action_at=next_action_at,
        )
        uow.session.add(reminder)
        uow.commit()
    return reminder


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str | None


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that verifies each request with the standardwebhooks verifier."""

    secret: str = ""
    port: int = field(default_factory=free_port)
    status: int = 204
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified, error = True, None
                except WebhookVerificationError as exc:
                    verified, error = False, str(exc)
                receiver.received.append(Received(headers, body, verified, error))
                self.send_response(receiver.status if verified else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
