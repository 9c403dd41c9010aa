"""The coordinators' workspace in real headless Chromium with JavaScript disabled:

- axe-core (axe-playwright-python, its bundled axe.min.js: no network) finds no WCAG 2.1 A/AA violation on
  any page. axe itself is JavaScript, so it runs in a second context with scripts allowed for it (and the
  CSP bypassed to inject it); the pages carry no script of their own, so they render the same. The pages are enumerated from the notifications app's route table (every GET route of the
  worklist routers that answers HTML), path parameters filled with ids of seeded data, so a page added later
  is covered without editing this test; each page is checked with its <details> opened.
- every action works from the keyboard alone: Tab to "Assign to me", "Acknowledge" and "Snooze", activate
  with Enter/Space/arrow keys (the snooze length is a select).
- each page is screenshotted into docs/screenshots/ (docs/workspace.md shows them).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from carepath.apps import create_notifications_app
from shared import orgtime
from shared.auth import create_token
from shared.clock import utcnow
from shared.db.tables import Patient, Reminder, ReminderReconcileState, WorklistMember
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.browser.test_worklist_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 (fixture)
from tests.integration.channels.support import seed_reminder
from tests.integration.workspace.kit import Intake, u

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}
OPEN_DETAILS = "() => document.querySelectorAll('details').forEach(d => d.open = true)"
ORG = "org-a"


def html_pages() -> list[str]:
    """Every GET route of the worklist routers that answers HTML, from the app's route table (its OpenAPI
    document: FastAPI builds that from every route, including those of included routers)."""
    paths = [
        path
        for path, operations in create_notifications_app().openapi()["paths"].items()
        if "get" in operations
        and "worklist" in operations["get"].get("tags", [])
        and "text/html" in operations["get"].get("responses", {}).get("200", {}).get("content", {})
    ]
    assert "/worklist" in paths and "/login" in paths, paths
    return sorted(set(paths))


def concrete(path: str, ids: dict[str, str]) -> str:
    for name in re.findall(r"\{([^}]+)\}", path):
        if name not in ids:
            pytest.fail(f"{path}: no seeded id for the path parameter {name!r}; add one to seed_workspace()")
        path = path.replace("{" + name + "}", ids[name])
    return path


def seed_workspace(settings: Settings) -> dict[str, str]:
    """A worklist with every kind of row: overdue, urgent, escalated, snoozed, rule change, assigned — and one
    patient with a real history posted through the intake and evaluated, whose page (stage, flags, chart,
    assessment history) is the one checked and screenshotted."""
    now = utcnow()
    intake = Intake(settings, ORG)
    evaluated = intake.patient(
        "MRN-2001",
        [
            u("surgery", 200, procedure="laminectomy"),
            u("pain_assessment", 150, pain_nrs=8, function_peg=7, distribution="radicular"),
            u("imaging", 150, modality="mri", findings=[], indication="persistent pain"),
            u("neuro_exam", 150, progressive_deficit=False),
            u("medication", 140, drug_class="nsaid", action="started"),
            u("therapy", 120, kind="physical_therapy", status="started", modality="active"),
            u("pain_assessment", 90, pain_nrs=7, function_peg=7, distribution="radicular"),
            u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=60),
            u("pain_assessment", 30, pain_nrs=6, function_peg=6, distribution="radicular"),
            u("medication", 20, drug_class="benzodiazepine", action="started"),
        ],
    )
    intake.drain()
    urgent = seed_reminder(
        settings,
        kind="urgent_surgical_referral",
        due_at=now - timedelta(hours=3),
        text="Urgent surgical referral: progressive neurological deficit",
        citation="G1",
    )
    review = seed_reminder(settings, kind="opioid_review_4w", due_at=now - timedelta(days=2), citation="G3; CDC22")
    snoozed = seed_reminder(settings, kind="pdmp_review", status="snoozed", due_at=now - timedelta(days=1))
    seed_reminder(settings, kind="pt_start_check", due_at=now + timedelta(days=4), text="Check PT has started")
    changed = seed_reminder(settings, kind="first_line_review", due_at=now - timedelta(days=20))
    with UnitOfWork(settings) as uow:
        for subject in ("coord-alice", "coord-bea"):
            uow.session.add(
                WorklistMember(org=ORG, subject=subject, role="coordinator", first_seen_at=now, last_seen_at=now)
            )
        rows = {r.id: uow.session.get(Reminder, r.id) for r in (urgent, review, snoozed, changed)}
        escalated, held, new = rows[urgent.id], rows[snoozed.id], rows[changed.id]
        assert escalated is not None and held is not None and new is not None
        escalated.escalated_at, escalated.assigned_to, escalated.assigned_at = now, "coord-bea", now
        held.snoozed_until, held.assigned_to, held.assigned_at = now + timedelta(days=2), "coord-alice", now
        # Readable MRNs for the screenshots, and an organisation working in Berlin time.
        seeded = select(Reminder).where(col(Reminder.patient_id) != evaluated).order_by(col(Reminder.due_at))
        for number, reminder in enumerate(uow.session.execute(seeded).scalars(), start=1001):
            patient = uow.session.get(Patient, reminder.patient_id)
            assert patient is not None
            patient.external_id = f"MRN-{number}"
        orgtime.set_timezone(uow, ORG, "Europe/Berlin")
        new.origin, new.origin_rule_set_version = "rule_change", "lbp-postlam-2026.2"
        for stage, reminder in (("urgent_surgical_evaluation", urgent), ("first_line", review)):
            uow.session.add(
                ReminderReconcileState(
                    patient_id=reminder.patient_id, org=ORG, assessment_seq=1, reconciled_at=now, stage=stage
                )
            )
        uow.commit()
    return {"reminder_id": review.id, "patient_id": evaluated}


def _axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    page.evaluate(OPEN_DETAILS)
    results = Axe().run(page, options=WCAG_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
    ]


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _name(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\{[^}]+\}", "", path).lower()).strip("-") or "index"


def _browser(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-debian-tools.sh")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def _open_paste_form(page: Any) -> None:
    """The development paste form sits in a <details> (axe's pass may have left it open already)."""
    if page.locator("details:has(#token)").get_attribute("open") is None:
        page.get_by_text("Development: sign in with a token").click()


def _sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/login")
    _open_paste_form(page)
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.url == f"{base}/worklist"


def test_every_page_has_no_axe_violations_and_is_screenshotted(settings: Settings, server: str) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    ids = seed_workspace(settings)
    pages = html_pages()
    token = create_token(settings, ORG, "coordinator", "coord-alice")
    found: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            # The harness can fail: an unlabelled field and an image without alt text are found.
            page.set_content('<html lang="en"><title>t</title><main><h1>t</h1><input><img src="x.png"></main>')
            assert {"label", "image-alt"} <= {problem.split(" ")[0] for problem in _axe_violations(page)}
            page.goto(f"{server}/login")
            found["/login (signed out)"] = _axe_violations(page)
            _shot(page, "login")
            _open_paste_form(page)
            page.get_by_label("Access token").fill("not a token")
            page.get_by_role("button", name="Sign in", exact=True).click()
            found["/login (refused)"] = _axe_violations(page)
            _sign_in(page, server, token)
            for path in pages:
                if path == "/login":
                    continue
                page.goto(server + concrete(path, ids))
                assert page.locator("h1").count() == 1, path
                if path.startswith("/worklist"):  # /login/start and /login/callback lead to a provider
                    _shot(page, _name(path))  # before the <details> are opened for axe
                found[path] = _axe_violations(page)
            # More states of the worklist: filtered, a flash message, a second page, an error page.
            for view in ("?assignee=me", "?assignee=unassigned&overdue=1", "?flash=bulk&done=2&skipped=1"):
                page.goto(f"{server}/worklist{view}")
                found[f"/worklist{view}"] = _axe_violations(page)
            page.goto(f"{server}/worklist?stage=unknown")
            found["/worklist (unknown filter: 422 page)"] = _axe_violations(page)
        finally:
            browser.close()
    problems = {path: violations for path, violations in found.items() if violations}
    assert problems == {}, problems
    assert len(found) >= len(pages) + 5


def _tab_to(page: Any, pattern: str, limit: int = 300) -> str:
    """Press Tab until the focused element's accessible text matches `pattern`; its text."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        text = page.evaluate(
            "() => { const e = document.activeElement; return e ? (e.innerText || e.value || '') + '|' + "
            "(e.getAttribute('aria-label') || '') + '|' + e.tagName : '' }"
        )
        if re.search(pattern, text):
            return str(text)
    raise AssertionError(f"Tab never reached {pattern!r}")


def test_every_action_works_from_the_keyboard(settings: Settings, server: str) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    now = utcnow()
    first = seed_reminder(settings, kind="opioid_review_4w", due_at=now - timedelta(days=3))
    second = seed_reminder(settings, kind="pdmp_review", due_at=now - timedelta(days=1))
    token = create_token(settings, ORG, "coordinator", "coord-alice")
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            context = browser.new_context(java_script_enabled=False, locale="en-GB")
            page = context.new_page()
            page.goto(f"{server}/login")
            _tab_to(page, r"^Development: sign in with a token")
            page.keyboard.press("Enter")  # opens the <details> holding the paste form
            _tab_to(page, r"TEXTAREA$")
            page.keyboard.insert_text(token)
            _tab_to(page, r"^Sign in\|")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{server}/worklist")

            _tab_to(page, r"^Assign to me\s*4-week opioid review")
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_have_text("Reminder assigned.")
            assert page.locator(f"#reminder-{first.id}").get_attribute("data-assigned-to") == "coord-alice"

            _tab_to(page, r"^Acknowledge\s*PDMP review")
            page.keyboard.press("Space")
            expect(page.get_by_role("status")).to_have_text("Reminder acknowledged.")
            assert page.locator(f"#reminder-{second.id}").get_attribute("data-status") == "acknowledged"

            _tab_to(page, r"^Snooze\s*4-week opioid review.*SUMMARY$")
            page.keyboard.press("Enter")  # opens the <details>
            _tab_to(page, r"SELECT$")  # "Snooze for": Until the time below, 1 day, 3 days, ...
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
            _tab_to(page, r"^Snooze\s*4-week opioid review.*BUTTON$")
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_have_text("Reminder snoozed.")
            assert page.locator(f"#reminder-{first.id}").get_attribute("data-status") == "snoozed"
            until = now + timedelta(days=3)
            expect(page.locator(f"#reminder-{first.id}")).to_contain_text(f"until {until:%Y-%m-%d}")
        finally:
            browser.close()
