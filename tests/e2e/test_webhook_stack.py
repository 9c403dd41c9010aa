"""A due reminder leaves the whole stack as a signed Standard Webhooks delivery to a real local receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, free_port, wait_for
from tests.e2e.test_spine import OPIOID_HISTORY, _new_patient, _post

pytestmark = pytest.mark.e2e


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/carepath"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_due_reminder_reaches_a_webhook_receiver_signed_and_without_phi(stack: Stack) -> None:
    receiver = Receiver()
    try:
        coordinator = stack.token("org-hooks", "coordinator")
        created = httpx.post(
            f"{stack.notifications_url}/v1/webhook-endpoints", json={"url": receiver.url}, headers=coordinator
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]

        client = stack.token("org-hooks", "client")
        patient_id = _new_patient(stack, client, "MRN-HOOK-SECRET")
        for type_, days_ago, data in OPIOID_HISTORY:
            _post(stack, client, patient_id, type_, days_ago, data)

        def review_hook() -> dict | None:
            for headers, body in receiver.received:
                payload = json.loads(body)
                if payload["data"].get("kind") == "opioid_review_4w":
                    Webhook(secret).verify(body, headers)  # raises on a bad signature
                    assert headers["webhook-id"]
                    return payload
            return None

        payload = wait_for(review_hook, what="the opioid_review_4w webhook")
        assert payload["type"] == "carepath.reminder.due"
        assert payload["data"]["patient_id"] == patient_id
        everything = b"".join(body for _, body in receiver.received)
        assert b"MRN-HOOK-SECRET" not in everything and b"mme_per_day" not in everything
    finally:
        receiver.server.shutdown()
