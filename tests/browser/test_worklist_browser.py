"""The worklist in real headless Chromium (Debian's /usr/bin/chromium via Playwright), against the
notifications app under a real uvicorn process on the test database. JavaScript is disabled in the page:
everything must work as plain HTML forms. The coordinator signs in through a real OpenID Connect provider
on loopback (tests/support/oidc_provider.py, Authlib's server side), served as `localhost` while carepath is
`127.0.0.1`: another site, as a real provider is (the session cookie must survive the cross-site return)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from carepath.cli import main as carepath_main
from shared.auth import FEED, create_token
from shared.clock import utcnow
from shared.settings import Settings
from tests.integration.channels.support import free_port, seed_reminder
from tests.support.provider_process import oidc_provider

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "carepath.apps:create_notifications_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded CI machine starts uvicorn slowly
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  if (document.documentElement.lang !== 'en') problems.push('html lang');
  if (document.querySelectorAll('h1').length !== 1) problems.push('h1 count ' + document.querySelectorAll('h1').length);
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.closest('label');
    if (!labelled) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
  }
  for (const table of document.querySelectorAll('table')) {
    if (!table.querySelector('caption')) problems.push('table without caption');
    for (const th of table.querySelectorAll('th')) if (!th.getAttribute('scope')) problems.push('th without scope');
  }
  for (const button of document.querySelectorAll('button')) if (!button.textContent.trim()) problems.push('empty button');
  return problems;
}"""


def assert_accessible(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == []


def test_coordinator_works_the_list_in_chromium(settings: Settings, server: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install-debian-tools.sh (apt-get install chromium chromium-driver)"
        )
    from playwright.sync_api import expect, sync_playwright

    now = utcnow()
    opioid = seed_reminder(settings, kind="opioid_review_4w", due_at=now - timedelta(days=5))
    pdmp = seed_reminder(settings, kind="pdmp_review", due_at=now - timedelta(days=2))
    urine = seed_reminder(settings, kind="urine_drug_test", due_at=now - timedelta(days=1))
    future = seed_reminder(settings, kind="pt_follow_up", due_at=now + timedelta(days=3))

    with (
        oidc_provider(f"{server}/login/callback", tmp_path, host="localhost") as provider,
        sync_playwright() as playwright,
    ):
        argv = ["oidc", "set", "--org", "org-a", "--issuer", provider.issuer, "--client-id", provider.client_id]
        argv += ["--client-secret", provider.client_secret, "--role-claim", "groups"]
        argv += ["--map", "carepath-coordinators=coordinator"]
        assert carepath_main(argv) == 0
        provider.control(user={"sub": "dr-jones", "groups": ["staff", "carepath-coordinators"]})
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False)  # progressive enhancement: none needed
            page = context.new_page()
            page.goto(f"{server}/worklist")
            assert page.url == f"{server}/login"
            assert_accessible(page)
            page.get_by_label("Organisation").fill("org-a")
            page.get_by_role("button", name="Sign in with your organisation").click()
            assert_accessible(page)
            page.get_by_role("link", name="Continue to org-a's sign-in").click()
            # To the provider (auto-approves its test user) and back through /login/callback.
            page.wait_for_url(f"{server}/worklist", timeout=15000)
            assert provider.control()["tokens_issued"] == 1
            assert_accessible(page)
            expect(page.locator("header.site")).to_contain_text("org-a")
            cookies = {c["name"]: c for c in context.cookies()}
            session = cookies["carepath_session"]
            assert session["httpOnly"] and session["sameSite"] == "Lax"
            assert "carepath_signin" not in cookies and "carepath_token" not in cookies

            rows = page.locator("tbody tr")
            expect(rows).to_have_count(4)
            assert rows.first.get_attribute("data-kind") == "opioid_review_4w"
            expect(rows.first.locator(".badge.overdue")).to_have_text("Overdue")
            expect(rows.first).to_contain_text("4-week opioid reassessment due")
            assert rows.nth(3).get_attribute("data-reminder-id") == future.id

            # Snooze the opioid review for three days, with a reason.
            row = page.locator(f"#reminder-{opioid.id}")
            row.locator("summary", has_text="Snooze").click()
            until = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
            row.get_by_label("Snooze until (UTC)").fill(until)
            row.get_by_label("Reason (optional)").fill("awaiting clinic letter")
            row.get_by_role("button", name="Snooze", exact=False).last.click()
            expect(page.get_by_role("status")).to_have_text("Reminder snoozed.")

            page.locator(f"#reminder-{pdmp.id}").get_by_role("button", name="Acknowledge").click()
            expect(page.get_by_role("status")).to_have_text("Reminder acknowledged.")

            row = page.locator(f"#reminder-{urine.id}")
            row.locator("summary", has_text="Dismiss").click()
            row.get_by_label("Reason", exact=True).select_option("already_done")
            row.get_by_label("Comment (optional)").fill("tested at the GP last week")
            row.get_by_role("button", name="Dismiss", exact=False).last.click()
            expect(page.get_by_role("status")).to_have_text("Reminder dismissed; the reason was recorded.")
            expect(page.locator(f"#reminder-{urine.id}")).to_have_count(0)  # closed: off the worklist
            assert_accessible(page)

            # The API never takes the session cookie, even while the session is live.
            assert (
                httpx.get(f"{server}/v1/reminders", cookies={"carepath_session": session["value"]}).status_code == 401
            )
            page.get_by_role("button", name="Sign out").click()
            assert page.url.startswith(f"{server}/login")
            expect(page.get_by_role("status")).to_have_text("You have signed out.")
        finally:
            browser.close()

    # The old session cookie works nowhere: worklist pages, the feed, the API (as a cookie or a bearer).
    old = {"carepath_session": session["value"]}
    for path in ("/worklist", f"/worklist/reminders/{future.id}/acknowledge"):
        method = "GET" if path == "/worklist" else "POST"
        response = httpx.request(method, f"{server}{path}", cookies=old, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    assert httpx.get(f"{server}/v1/reminders.ics", cookies=old).status_code == 401
    assert httpx.get(f"{server}/v1/reminders.ics", params={"token": session["value"]}).status_code == 401
    assert httpx.get(f"{server}/v1/reminders", cookies=old).status_code == 401
    assert (
        httpx.get(f"{server}/v1/reminders", headers={"Authorization": f"Bearer {session['value']}"}).status_code == 401
    )
    feed = create_token(settings, "org-a", "coordinator", typ=FEED)
    assert httpx.get(f"{server}/v1/reminders.ics", params={"token": feed}).status_code == 200  # the feed itself works
    # The checks below use a coordinator API token.
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'coordinator')}"}
    statuses = {
        r.id: httpx.get(f"{server}/v1/reminders/{r.id}", headers=headers).json() for r in (opioid, pdmp, urine, future)
    }
    assert statuses[opioid.id]["status"] == "snoozed"
    assert statuses[opioid.id]["snoozed_until"].startswith(until)
    assert statuses[pdmp.id]["status"] == "acknowledged"
    assert statuses[urine.id]["status"] == "dismissed"
    assert statuses[urine.id]["dismiss_reason"] == "already_done"
    assert statuses[urine.id]["dismiss_comment"] == "tested at the GP last week"
    assert statuses[future.id]["status"] == "due"
