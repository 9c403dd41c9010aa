"""Per-token and per-organisation request rates (moving window; Redis under the pg backend, process memory
under SQLite): a bounded burst over the limit is 429 with Retry-After, audited, and the API recovers once
the window has moved on."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from shared import abuse, audit
from shared.auth import create_token
from shared.settings import Settings
from tests.integration.limits.conftest import Configure

pytestmark = pytest.mark.integration
ORG = "org-limits"


def _headers(settings: Settings, subject: str, org: str = ORG) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, 'coordinator', subject)}"}


def test_the_storage_follows_the_deployment(settings: Settings, backend: str) -> None:
    assert abuse.storage_uri(settings) == ("memory://" if backend == "sqlite" else settings.broker_url)
    assert abuse.storage_uri(settings.model_copy(update={"rate_limit_storage": "memory://"})) == "memory://"


def test_a_token_over_its_rate_gets_429_with_retry_after_and_recovers(
    configure: Configure, notifications: TestClient
) -> None:
    settings = configure(rate_limit_per_token="5 per 3 seconds", rate_limit_per_org="1000/minute")
    mine, other = _headers(settings, "burst-1"), _headers(settings, "calm-1")
    statuses = [notifications.get("/v1/reminders", headers=mine).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5, statuses
    assert statuses[5:] == [429] * 3, statuses
    refused = notifications.get("/v1/reminders", headers=mine)
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3
    assert notifications.get("/v1/reminders", headers=other).status_code == 200  # another token is unaffected
    # Recovers once the window has moved on: after the Retry-After it was given.
    time.sleep(retry_after + 0.3)
    assert notifications.get("/v1/reminders", headers=mine).status_code == 200
    denied = [e for e in audit.export(settings, org=ORG) if e["status_code"] == 429]
    assert len(denied) == 4 and {e["actor"] for e in denied} == {"coordinator:burst-1"}
    assert {(e["action"], e["outcome"]) for e in denied} == {("auth.refused", "denied")}


def test_an_organisation_over_its_rate_gets_429_whichever_token(configure: Configure, intake: TestClient) -> None:
    settings = configure(rate_limit_per_token="1000/minute", rate_limit_per_org="6 per 5 seconds")
    tokens = [_headers(settings, f"member-{n}") for n in range(3)]
    body = {"updates": []}
    statuses = [intake.post("/v1/pathway:evaluate", json=body, headers=tokens[n % 3]).status_code for n in range(9)]
    assert statuses == [200] * 6 + [429] * 3, statuses
    refused = intake.post("/v1/pathway:evaluate", json=body, headers=_headers(settings, "member-new"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # Another organisation has its own budget.
    assert (
        intake.post("/v1/pathway:evaluate", json=body, headers=_headers(settings, "x", "org-else")).status_code == 200
    )


def test_limits_can_be_switched_off(configure: Configure, notifications: TestClient) -> None:
    settings = configure(rate_limit_per_token="2 per 10 seconds", rate_limits_enabled="false")
    mine = _headers(settings, "unlimited")
    assert [notifications.get("/v1/reminders", headers=mine).status_code for _ in range(4)] == [200] * 4


def test_every_route_documents_429(intake: TestClient, notifications: TestClient) -> None:
    """Every authenticated operation declares the 429 it may answer (the fuzz tests check conformance)."""
    public = {"/healthz", "/readyz", "/metrics", "/fhir/r4/metadata", "/login", "/logout"}
    for client in (intake, notifications):
        for path, methods in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
            for method, operation in methods.items():
                if path in public and not (path == "/login" and method == "post"):
                    continue
                assert "429" in operation["responses"], (method, path)
