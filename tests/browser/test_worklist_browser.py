"""The worklist in real headless Chromium (Debian's /usr/bin/chromium via Playwright), against the
notifications app under a real uvicorn process on the test database. JavaScript is disabled in the page:
everything must work as plain HTML forms."""

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

from shared.auth import create_token
from shared.clock import utcnow
from shared.settings import Settings
from tests.integration.channels.support import free_port, seed_reminder

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
        deadline = time.monotonic() + 30
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


def test_coordinator_works_the_list_in_chromium(settings: Settings, server: str) -> None:
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
    token = create_token(settings, "org-a", "coordinator")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False)  # progressive enhancement: none needed
            page = context.new_page()
            page.goto(f"{server}/worklist")
            assert page.url == f"{server}/login"
            assert_accessible(page)
            page.get_by_label("Access token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            assert page.url == f"{server}/worklist"
            assert_accessible(page)
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["carepath_token"]["httpOnly"] and cookies["carepath_token"]["sameSite"] == "Strict"

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

            page.get_by_role("button", name="Sign out").click()
            assert page.url.startswith(f"{server}/login")
        finally:
            browser.close()

    # Signing out revoked the session's token; the checks below use another coordinator token.
    assert httpx.get(f"{server}/v1/reminders", headers={"Authorization": f"Bearer {token}"}).status_code == 401
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
