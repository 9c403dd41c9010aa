"""The patient page through the ASGI app: what it shows, the other organisation's 404, the audit read row,
reminder actions from the page (CSRF-checked) landing in the reminder's history, rule-set changes in the
assessment history."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from services.pathway.handler import evaluate_patient
from shared.clock import utcnow
from shared.db.tables import Assessment, AuditEvent
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.channels.test_worklist_page import csrf_of, signed_in
from tests.integration.workspace.kit import Intake, u

pytestmark = pytest.mark.integration


def _story() -> list[dict[str, object]]:
    return [
        u("surgery", 200, procedure="laminectomy"),
        u("pain_assessment", 150, pain_nrs=8, function_peg=7, distribution="radicular"),
        u("imaging", 150, modality="mri", findings=[], indication="persistent pain"),
        u("neuro_exam", 150, progressive_deficit=False),
        u("medication", 140, drug_class="nsaid", action="started"),
        u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=90),
        u("pain_assessment", 30, pain_nrs=6, function_peg=6, distribution="radicular"),
    ]


def test_patient_page_shows_the_pathway_and_acts_on_reminders(settings: Settings) -> None:
    intake = Intake(settings)
    patient_id = intake.patient("MRN-PAGE-1", _story())
    intake.drain()
    client = signed_in(settings)
    worklist = client.get("/worklist").text
    assert f'href="/worklist/patients/{patient_id}">MRN-PAGE-1</a>' in worklist

    page = client.get(f"/worklist/patients/{patient_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Patient MRN-PAGE-1</h1>" in html and "Stage: First-line treatment" in html
    assert re.search(r'<span id="stage-reason">In first line since \d{4}-\d\d-\d\d: ', html)
    assert "<script" not in html.lower() and page.headers["content-security-policy"].startswith("default-src 'none'")
    # Flags in plain words with their recommendation and the full source, linked.
    assert 'data-flag="naloxone_indicated"' in html and "(the overdose antidote)" in html
    assert '<a href="https://www.cdc.gov/mmwr/volumes/71/rr/rr7103a1.htm"' in html
    assert "Dowell D, Ragan KR, Jones CM, Baldwin GT, Chou R." in html
    # The chart: one marker per pain assessment, the baseline, its text alternative and data table.
    svg = html[html.index("<svg") : html.index("</svg>")]
    pain = svg[svg.index('id="timeline-pain-nrs"') :]
    assert len(re.findall(r"<use ", pain[: pain.index('<g id="timeline-', 30)])) == 2
    assert 'id="timeline-baseline"' in svg and 'id="timeline-mme"' in svg
    assert "baseline 8/10; 30 % better is 5.6/10 or less" in html
    for input_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, f"input {input_id} has no label"

    # Act on a reminder from the page: CSRF enforced, then the transition shows in its history.
    reminder_id = re.search(r'data-reminder-id="([^"]+)" data-status="due"', html).group(1)  # type: ignore[union-attr]
    url = f"/worklist/patients/{patient_id}/reminders/{reminder_id}/snooze"
    until = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(url, data={"until": until}).status_code == 403
    done = client.post(url, data={"csrf_token": csrf_of(html), "until": until, "reason": "clinic on friday"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/worklist/patients/{patient_id}?flash=snoozed#reminder-{reminder_id}"
    after = client.get(done.headers["location"].split("#")[0]).text
    article = after[after.index(f'<article id="reminder-{reminder_id}"') :]
    article = article[: article.index("</article>")]
    assert 'data-status="snoozed"' in article and "Reminder snoozed." in after
    assert re.search(
        r'<tr data-to="snoozed">.*?Due → Snoozed until .*?coordinator:[^<]+</td><td>clinic on friday', article
    )

    with UnitOfWork(settings, read_only=True) as uow:
        reads = uow.session.execute(
            select(AuditEvent.patient_id, AuditEvent.outcome).where(AuditEvent.action == "worklist.patient.read")
        ).all()
    assert (patient_id, "success") in reads


def test_other_organisation_and_unknown_patients_are_404(settings: Settings) -> None:
    intake = Intake(settings, org="org-b")
    theirs = intake.patient("MRN-B-1", _story())
    intake.drain()
    client = signed_in(settings, org="org-a")
    for patient_id in (theirs, "no-such-patient"):
        page = client.get(f"/worklist/patients/{patient_id}")
        assert page.status_code == 404 and "MRN-B-1" not in page.text
    token = csrf_of(client.get("/worklist").text)
    refused = client.post(f"/worklist/patients/{theirs}/reminders/x/acknowledge", data={"csrf_token": token})
    assert refused.headers["location"] == "/worklist?flash=not_found"
    assert client.get("/worklist/overview").text.count("MRN-B-1") == 0
    anonymous = signed_in(settings)
    anonymous.cookies.clear()
    assert anonymous.get(f"/worklist/patients/{theirs}").headers["location"] == "/login"
    with UnitOfWork(settings, read_only=True) as uow:
        outcomes = uow.session.execute(
            select(AuditEvent.outcome).where(AuditEvent.action == "worklist.patient.read")
        ).scalars()
        assert set(outcomes) == {"not_found"}


def test_history_shows_a_rule_set_change(settings: Settings) -> None:
    intake = Intake(settings)
    patient_id = intake.patient("MRN-RULES-1", _story())
    intake.drain()
    with UnitOfWork(settings) as uow:  # as if the stored assessment had been made under the previous rules
        uow.session.execute(
            update(Assessment).where(Assessment.patient_id == patient_id).values(rule_set_version="lbp-postlam-2026.1")
        )
        row = uow.session.execute(select(Assessment).where(Assessment.patient_id == patient_id)).scalars().first()
        assert row is not None
        row.body = {**row.body, "rule_set_version": "lbp-postlam-2026.1"}
        uow.session.add(row)
        uow.commit()
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "reevaluation")
        uow.commit()
    with UnitOfWork(settings, read_only=True) as uow:  # only the newest row is the current one
        current = uow.session.execute(
            select(Assessment.seq, Assessment.is_current).where(Assessment.patient_id == patient_id)
        ).all()
    newest = max(seq for seq, _ in current)
    assert len(current) >= 2 and {seq for seq, flag in current if flag} == {newest}
    html = signed_in(settings).get(f"/worklist/patients/{patient_id}").text
    history = html[html.index('id="history"') :]
    assert re.search(
        r"<td>rule set changed</td>\s*<td><strong>lbp-postlam-2026.1 → lbp-postlam-2026.2</strong>", history
    )
    assert "First assessment: first line" in history
