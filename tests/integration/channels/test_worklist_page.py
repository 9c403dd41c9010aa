"""The worklist page through the ASGI app: login, CSRF, order, filters and the four actions as plain POSTs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_notifications_app as create_app
from shared.auth import create_token
from shared.clock import utcnow
from shared.settings import Settings
from tests.integration.channels.support import auth, seed_reminder

pytestmark = pytest.mark.integration
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def signed_in(settings: Settings, org: str = "org-a", role: str = "coordinator") -> TestClient:
    client = TestClient(create_app(), follow_redirects=False)
    page = client.get("/login")
    assert page.status_code == 200
    response = client.post(
        "/login", data={"token": create_token(settings, org, role), "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303 and response.headers["location"] == "/worklist"
    cookie = response.headers["set-cookie"]
    assert "carepath_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    return client


def test_order_filters_and_markup(settings: Settings) -> None:
    now = utcnow()
    later = seed_reminder(settings, kind="pdmp_review", due_at=now + timedelta(days=2))
    old = seed_reminder(settings, kind="opioid_review_4w", due_at=now - timedelta(days=3))
    urgent = seed_reminder(settings, kind="urgent_surgical_referral", due_at=now - timedelta(hours=1))
    urgent_soon = seed_reminder(settings, kind="urgent_surgical_referral", due_at=now + timedelta(hours=1))
    seed_reminder(settings, kind="pt_follow_up", status="completed")
    acknowledged = seed_reminder(
        settings, kind="urine_drug_test", status="acknowledged", due_at=now + timedelta(days=9)
    )
    seed_reminder(settings, org="org-b", kind="opioid_review_4w")
    client = signed_in(settings)
    page = client.get("/worklist")
    assert page.status_code == 200
    html = page.text
    order = re.findall(r'data-reminder-id="([^"]+)"', html)
    # Overdue first (urgent before the rest), then not yet overdue (urgent first again), each by due time.
    assert order == [urgent.id, old.id, urgent_soon.id, later.id, acknowledged.id]
    assert '<html lang="en">' in html and html.count("<h1") == 1 and "<caption>" in html
    assert "script" not in html.lower()
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    for input_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, f"input {input_id} has no label"
    # A reminder stored with its citation only ("G3") shows the source in words, from the pathway's catalogue.
    assert "Source: G3" not in html and "(G3)" not in html
    assert "the pain-management practice guideline behind PT" in html

    only = client.get("/worklist", params={"kind": "pdmp_review"}).text
    assert re.findall(r'data-reminder-id="([^"]+)"', only) == [later.id]
    by_status = client.get("/worklist", params={"status": "acknowledged"}).text
    assert re.findall(r'data-reminder-id="([^"]+)"', by_status) == [acknowledged.id]


def test_actions_redirect_with_flash_and_change_status(settings: Settings) -> None:
    reminders = [seed_reminder(settings, kind=k) for k in ("opioid_review_4w", "pdmp_review", "urine_drug_test")]
    client = signed_in(settings)
    token = csrf_of(client.get("/worklist").text)
    until = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    posts = [
        (reminders[0].id, "snooze", {"until": until, "reason": "awaiting clinic"}, "snoozed"),
        (reminders[1].id, "acknowledge", {}, "acknowledged"),
        (reminders[2].id, "dismiss", {"reason": "already_done", "comment": "done at GP"}, "dismissed"),
    ]
    for reminder_id, action, data, flash in posts:
        response = client.post(
            f"/worklist/reminders/{reminder_id}/{action}", data={"csrf_token": token, "filter_kind": "", **data}
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"/worklist?flash={flash}"
    api = {
        item["id"]: item["status"]
        for item in client.get("/v1/reminders", headers=auth(settings, "org-a")).json()["items"]
    }
    assert [api[r.id] for r in reminders] == ["snoozed", "acknowledged", "dismissed"]
    assert "Reminder dismissed" in client.get("/worklist?flash=dismissed").text

    again = client.post(f"/worklist/reminders/{reminders[2].id}/acknowledge", data={"csrf_token": token})
    assert again.headers["location"] == "/worklist?flash=conflict"
    past = client.post(
        f"/worklist/reminders/{reminders[1].id}/snooze", data={"csrf_token": token, "until": "2001-01-01T00:00"}
    )
    assert past.headers["location"] == "/worklist?flash=invalid"


def test_csrf_and_login_are_enforced(settings: Settings) -> None:
    reminder = seed_reminder(settings)
    anonymous = TestClient(create_app(), follow_redirects=False)
    assert anonymous.get("/worklist").headers["location"] == "/login"
    assert anonymous.post("/login", data={"token": create_token(settings, "org-a", "coordinator")}).status_code == 403
    login_page = anonymous.get("/login")
    refused = anonymous.post("/login", data={"token": "not-a-token", "csrf_token": csrf_of(login_page.text)})
    assert refused.status_code == 401 and "not accepted" in refused.text
    client_role = anonymous.post(
        "/login", data={"token": create_token(settings, "org-a", "client"), "csrf_token": csrf_of(login_page.text)}
    )
    assert client_role.status_code == 403

    client = signed_in(settings)
    url = f"/worklist/reminders/{reminder.id}/acknowledge"
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": "0" * 64}).status_code == 403
    stale = csrf_of(anonymous.get("/login").text)  # a token of another browser/session
    assert client.post(url, data={"csrf_token": stale}).status_code == 403
    assert client.get("/v1/reminders", headers=auth(settings, "org-a")).json()["items"][0]["status"] == "due"

    other_org = signed_in(settings, org="org-b")
    token = csrf_of(other_org.get("/worklist").text)
    assert other_org.post(url, data={"csrf_token": token}).headers["location"] == "/worklist?flash=not_found"

    logout = client.post("/logout", data={"csrf_token": csrf_of(client.get("/worklist").text)})
    assert logout.status_code == 303 and 'carepath_session=""' in logout.headers["set-cookie"]
