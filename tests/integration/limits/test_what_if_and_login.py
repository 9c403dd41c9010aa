"""The what-if's concurrency cap and body cap, and worklist sign-in throttling (per client address, per
subject)."""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from shared import abuse, audit
from shared.auth import create_token
from shared.settings import Settings
from tests.integration.limits.conftest import Configure

pytestmark = pytest.mark.integration
ORG = "org-limits"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, ORG, 'coordinator')}"}


def _update(day: int) -> dict[str, object]:
    return {
        "type": "pain_assessment",
        "occurred_at": f"2026-09-{day:02d}T10:00:00Z",
        "data": {"pain_nrs": 6, "distribution": "radicular"},
    }


def test_what_ifs_beyond_the_processs_slots_get_429_until_one_is_free(configure: Configure, intake: TestClient) -> None:
    settings = configure(what_if_concurrency=2, what_if_queue_seconds=0)
    body = {"updates": [_update(1)]}
    slots = abuse.what_if_slots(settings)
    held = [slots.acquire(blocking=False) for _ in range(2)]  # two evaluations in progress elsewhere
    assert held == [True, True]
    try:
        refused = intake.post("/v1/pathway:evaluate", json=body, headers=_headers(settings))
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
    finally:
        slots.release()
    assert intake.post("/v1/pathway:evaluate", json=body, headers=_headers(settings)).status_code == 200
    slots.release()


def test_a_what_if_waits_for_a_slot_within_the_queue_time(configure: Configure, intake: TestClient) -> None:
    settings = configure(what_if_concurrency=1, what_if_queue_seconds=5)
    slots = abuse.what_if_slots(settings)
    assert slots.acquire(blocking=False)
    releaser = threading.Timer(0.5, slots.release)
    releaser.start()
    started = time.monotonic()
    response = intake.post("/v1/pathway:evaluate", json={"updates": [_update(2)]}, headers=_headers(settings))
    releaser.join()
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 0.4  # it waited for the slot


def test_concurrent_what_ifs_never_exceed_the_cap(configure: Configure, intake: TestClient) -> None:
    """Eight parallel requests, one slot: each either ran (alone) or was refused 429; never a 5xx."""
    settings = configure(what_if_concurrency=1, what_if_queue_seconds=0)
    body = {"updates": [_update(day) for day in range(1, 28)] * 20}  # 540 updates: measurable work
    headers = _headers(settings)
    statuses: list[int] = []

    def call() -> None:
        statuses.append(intake.post("/v1/pathway:evaluate", json=body, headers=headers).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == 8 and set(statuses) <= {200, 429}, statuses
    assert 200 in statuses
    assert abuse.what_if_slots(settings).acquire(blocking=False)  # every slot was given back
    abuse.what_if_slots(settings).release()


def test_a_what_if_body_over_the_cap_is_413(configure: Configure, intake: TestClient) -> None:
    settings = configure(what_if_max_body_bytes=4000)
    body = {"updates": [_update(day) for day in range(1, 28)] * 2}
    assert len(str(body)) > 4000
    response = intake.post("/v1/pathway:evaluate", json=body, headers=_headers(settings))
    assert response.status_code == 413
    assert (
        intake.post(
            "/v1/pathway:evaluate", json={"updates": body["updates"][:3]}, headers=_headers(settings)
        ).status_code
        == 200
    )


def _attempt(client: TestClient, token: str) -> int:
    page = client.get("/login")
    match = CSRF.search(page.text)
    assert match
    return client.post("/login", data={"token": token, "csrf_token": match.group(1)}).status_code


def test_sign_in_attempts_from_one_address_are_throttled(configure: Configure, notifications: TestClient) -> None:
    settings = configure(login_limit_per_client="3/minute", login_limit_per_subject="100/minute")
    assert [_attempt(notifications, f"guess-{n}") for n in range(3)] == [401, 401, 401]
    good = create_token(settings, ORG, "coordinator", "dana")
    page = notifications.get("/login")
    match = CSRF.search(page.text)
    assert match
    refused = notifications.post("/login", data={"token": good, "csrf_token": match.group(1)})
    assert refused.status_code == 429  # even a good token, from this address, for now
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in refused.text
    outcomes = [(e["action"], e["outcome"], e["status_code"]) for e in audit.export(settings)]
    assert outcomes.count(("auth.signin", "denied", 401)) == 3
    assert outcomes.count(("auth.signin", "denied", 429)) == 1


def test_sign_in_attempts_naming_one_subject_are_throttled(configure: Configure, notifications: TestClient) -> None:
    settings = configure(login_limit_per_client="100/minute", login_limit_per_subject="2/minute")
    stranger = create_token(settings, "org-x", "coordinator", "erin", lifetime=None)
    revoked_like = stranger[:-4] + ("AAAA" if not stranger.endswith("AAAA") else "BBBB")  # bad signature
    assert [_attempt(notifications, revoked_like) for _ in range(2)] == [401, 401]
    assert _attempt(notifications, create_token(settings, ORG, "coordinator", "erin")) == 429
    assert _attempt(notifications, create_token(settings, ORG, "coordinator", f"frank-{uuid.uuid4().hex[:6]}")) == 303
