"""Acceptance 1 (this branch's part) in real headless Chromium with JavaScript disabled: sign in with the
development token form, open a patient from a reminder on the worklist, see the stage reason, the chart (an
<svg> with the pain points and the baseline line) and the sources in full, act on the reminder from the
patient page and see it in the reminder's history; the overview links to the patients."""

from __future__ import annotations

import pytest

from shared.auth import create_token
from shared.settings import Settings
from tests.browser.test_worklist_browser import CHROMIUM, CHROMIUM_ARGS, assert_accessible, server
from tests.integration.workspace.kit import Intake, u

pytestmark = pytest.mark.browser
__all__ = ["server"]  # the uvicorn fixture


def test_coordinator_opens_a_patient_from_a_reminder_and_acts_on_it(settings: Settings, server: str) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-debian-tools.sh")
    from playwright.sync_api import expect, sync_playwright

    intake = Intake(settings)
    patient_id = intake.patient(
        "MRN-BROWSER-1",
        [
            u("surgery", 200, procedure="laminectomy"),
            u("pain_assessment", 150, pain_nrs=8, function_peg=7, distribution="axial"),
            u("imaging", 150, modality="mri", findings=[], indication="persistent pain"),
            u("neuro_exam", 150, progressive_deficit=False),
            u("medication", 140, drug_class="nsaid", action="started"),
            u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=90),
            u("pain_assessment", 30, pain_nrs=6, function_peg=6, distribution="axial"),
        ],
    )
    intake.drain()
    token = create_token(settings, "org-a", "coordinator")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False)
            page = context.new_page()
            page.goto(f"{server}/login")
            page.get_by_text("Development: sign in with a token").click()  # the paste form sits in a <details>
            page.get_by_label("Access token").fill(token)
            page.get_by_role("button", name="Sign in", exact=True).click()
            assert page.url == f"{server}/worklist"

            row = page.locator('tbody tr[data-kind="opioid_review_4w"]')
            reminder_id = row.get_attribute("data-reminder-id")
            # Own it: "assign to me", then the "my work" filter holds it (and only what is mine).
            row.get_by_role("button", name="Assign to me").click()
            expect(page.get_by_role("status")).to_have_text("Reminder assigned.")
            page.get_by_label("Owner").select_option("me")
            page.get_by_role("button", name="Apply filters").click()
            assert "assignee=me" in page.url
            mine = page.locator("tbody tr[data-reminder-id]")
            expect(mine).to_have_count(1)
            assert mine.get_attribute("data-reminder-id") == reminder_id
            row = page.locator(f"#reminder-{reminder_id}")
            row.get_by_role("link", name="MRN-BROWSER-1").click()
            assert page.url == f"{server}/worklist/patients/{patient_id}"
            assert_accessible(page)
            expect(page.locator("h1")).to_have_text("Patient MRN-BROWSER-1")
            expect(page.locator("#stage-reason")).to_contain_text("In first line since")
            chart = page.locator("#chart svg")
            expect(chart).to_have_count(1)
            expect(chart.locator("#timeline-pain-nrs use")).to_have_count(2)  # one marker per pain assessment
            expect(chart.locator("#timeline-baseline path")).to_have_count(1)
            expect(chart.locator("title")).to_have_text("Pain, function and opioid dose over time")
            link = page.get_by_role("link", name="CDC Clinical Practice Guideline for Prescribing Opioids", exact=False)
            expect(link.first).to_have_attribute("href", "https://www.cdc.gov/mmwr/volumes/71/rr/rr7103a1.htm")
            expect(page.locator("#flags")).to_contain_text("Dowell D, Ragan KR, Jones CM, Baldwin GT, Chou R.")

            article = page.locator(f"#reminder-{reminder_id}")
            article.get_by_role("button", name="Acknowledge").click()
            expect(page.get_by_role("status")).to_have_text("Reminder acknowledged.")
            article = page.locator(f"#reminder-{reminder_id}")
            assert article.get_attribute("data-status") == "acknowledged"
            expect(article.locator('tr[data-to="acknowledged"]')).to_contain_text("coordinator:")
            # The assignment is in the reminder's history too (status unchanged, reason "assigned").
            expect(article.locator('tr[data-to="due"]').filter(has_text="assigned")).to_have_count(1)

            page.get_by_role("link", name="Overview").click()
            assert_accessible(page)
            gap = page.locator('[data-gap="opioid_risk_without_naloxone"]')
            gap.get_by_role("link", name="MRN-BROWSER-1").click()
            assert page.url == f"{server}/worklist/patients/{patient_id}"
        finally:
            browser.close()
