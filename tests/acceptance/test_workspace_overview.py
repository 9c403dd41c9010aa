"""Acceptance 2 of issue 12: the population overview of a seeded organisation (≥ 200 patients posted through
the real intake API and evaluated by the real worker code) counts what the API says, and each care-gap list
holds exactly the patients whose story puts them in it (expected sets written from the stories, not read
back from the overview's own queries)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from shared.auth import create_token
from shared.clock import utcnow
from shared.settings import Settings, get_settings
from tests.integration.channels.test_worklist_page import signed_in
from tests.integration.workspace.kit import Intake, u

pytestmark = pytest.mark.integration
Story = Callable[[], list[dict[str, Any]]]
GAPS = ("opioid_risk_without_naloxone", "pt_referral_not_started", "first_line_stalled", "opioid_review_overdue")


def surgery() -> list[dict[str, Any]]:
    return [u("surgery", 200, procedure="laminectomy")]


def evaluated(distribution: str = "axial") -> list[dict[str, Any]]:
    """Surgery 200 days ago, the initial evaluation complete 150 days ago (baseline pain 8/10)."""
    return [
        *surgery(),
        u("pain_assessment", 150, pain_nrs=8, function_peg=7, distribution=distribution),
        u("imaging", 150, modality="mri", findings=[], indication="persistent pain"),
        u("neuro_exam", 150, progressive_deficit=False),
    ]


def first_line_ok() -> list[dict[str, Any]]:
    """First line going as planned: an NSAID and a PT referral 10 days ago (not yet 4 weeks)."""
    return [*evaluated(), u("medication", 140, drug_class="nsaid", action="started"),
            u("therapy", 10, kind="physical_therapy", status="referred")]  # fmt: skip


def second_line() -> list[dict[str, Any]]:
    return [*evaluated(), u("medication", 140, drug_class="nsaid", action="started"),
            u("therapy", 130, kind="physical_therapy", status="started", modality="active"),
            u("therapy", 100, kind="physical_therapy", status="completed"),
            u("pain_assessment", 60, pain_nrs=8, function_peg=7, distribution="axial")]  # fmt: skip


STORIES: dict[str, tuple[Story, str, frozenset[str]]] = {
    # name: (updates, expected stage, expected care gaps)
    "initial": (lambda: [*surgery(), u("pain_assessment", 150, pain_nrs=6, distribution="axial")],
                "initial_evaluation", frozenset()),
    "stalled": (evaluated, "first_line", frozenset({"first_line_stalled"})),
    "stalled_no_nsaid": (lambda: [*evaluated(), u("therapy", 100, kind="physical_therapy", status="referred"),
                                  u("therapy", 95, kind="physical_therapy", status="started", modality="active")],
                         "first_line", frozenset({"first_line_stalled"})),
    "first_line_ok": (first_line_ok, "first_line", frozenset()),
    "pt_not_started": (lambda: [*evaluated(), u("medication", 140, drug_class="nsaid", action="started"),
                                u("therapy", 40, kind="physical_therapy", status="referred")],
                       "first_line", frozenset({"pt_referral_not_started"})),
    "pt_withdrawn": (lambda: [*evaluated(), u("medication", 140, drug_class="nsaid", action="started"),
                              u("therapy", 40, kind="physical_therapy", status="referred"),
                              u("therapy", 35, kind="physical_therapy", status="stopped")],
                     "first_line", frozenset()),
    "second_line": (second_line, "second_line", frozenset()),
    "refractory": (lambda: [*second_line(), u("therapy", 100, kind="cbt", status="started"),
                            u("procedure", 40, kind="epidural_steroid_injection", approach="interlaminar",
                              image_guided=True),
                            u("pain_assessment", 20, pain_nrs=8, distribution="axial")],
                   "refractory", frozenset()),
    "urgent": (lambda: [*first_line_ok(), u("neuro_exam", 3, progressive_deficit=True)],
               "urgent_surgical_evaluation", frozenset()),
    "high_mme": (lambda: [*first_line_ok(), u("medication", 60, drug_class="opioid_ir", action="started",
                                              mme_per_day=90)],
                 "first_line", frozenset({"opioid_risk_without_naloxone", "opioid_review_overdue"})),
    "high_mme_naloxone": (lambda: [*first_line_ok(),
                                   u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=90),
                                   u("opioid_monitoring", 59, plan_documented=True, pdmp_checked=True,
                                     urine_drug_test=True, naloxone_offered=True),
                                   u("opioid_review", 30, meaningful_relief=True, pain_nrs=4)],
                          "first_line", frozenset()),
    "benzo": (lambda: [*first_line_ok(), u("medication", 20, drug_class="opioid_ir", action="started",
                                           mme_per_day=20),
                       u("medication", 20, drug_class="benzodiazepine", action="started")],
              "first_line", frozenset({"opioid_risk_without_naloxone"})),
    "low_mme_sud": (lambda: [*first_line_ok(), u("psychosocial", 100, factors=["substance_use_disorder"]),
                             u("medication", 20, drug_class="opioid_ir", action="started", mme_per_day=20)],
                    "first_line", frozenset()),
    "review_overdue": (lambda: [*first_line_ok(), u("medication", 45, drug_class="opioid_ir", action="started",
                                                    mme_per_day=30)],
                       "first_line", frozenset({"opioid_review_overdue"})),
    "opioid_stopped": (lambda: [*first_line_ok(),
                                u("medication", 60, drug_class="opioid_ir", action="started", mme_per_day=90),
                                u("medication", 50, drug_class="opioid_ir", action="stopped")],
                       "first_line", frozenset()),
}  # fmt: skip
PER_STORY = 14  # 15 stories x 14 = 210 patients


def _all_reminders(intake: Intake, headers: dict[str, str]) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"status": "due,acknowledged,snoozed", "limit": "200", **({"cursor": cursor} if cursor else {})}
        page = intake_notifications(intake).get("/v1/reminders", params=params, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def intake_notifications(intake: Intake) -> Any:
    from fastapi.testclient import TestClient

    from carepath.apps import create_notifications_app

    if not hasattr(intake, "_notifications"):
        intake._notifications = TestClient(create_notifications_app())  # type: ignore[attr-defined]
    return intake._notifications  # type: ignore[attr-defined]


def _overdue(item: dict[str, Any], now: datetime) -> bool:
    if item["origin"] == "rule_change":
        return item["escalated_at"] is not None
    return datetime.fromisoformat(item["due_at"]) < now


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The request limits off: this test reads every patient through the API in seconds."""
    monkeypatch.setenv("CAREPATH_RATE_LIMITS_ENABLED", "false")
    get_settings.cache_clear()
    return get_settings()


def test_overview_counts_match_the_api_and_care_gaps_hold_exactly_the_right_patients(settings: Settings) -> None:
    intake = Intake(settings)
    story_of: dict[str, str] = {}
    for name, (story, _, _) in STORIES.items():
        for n in range(PER_STORY):
            story_of[intake.patient(f"MRN-{name}-{n:02d}", story())] = name
    intake.drain()
    assert len(story_of) >= 200
    intake.patient("MRN-zz-unevaluated", [])  # no update: no assessment yet
    other = Intake(settings, org="org-b")
    other_id = other.patient("MRN-other-org", STORIES["high_mme"][0]())
    other.drain()

    # The API's own view: stage per patient (assessment endpoint), reminders on the worklist per kind.
    stages = Counter()
    for patient_id, name in story_of.items():
        response = intake.client.get(f"/v1/patients/{patient_id}/pathway", headers=intake.headers)
        assert response.status_code == 200
        stage = response.json()["stage"]
        assert stage == STORIES[name][1], (name, stage, response.json()["stage_reason"])
        stages[stage] += 1
    assert set(stages) == {stage for _, stage, _ in STORIES.values()}  # every stage occurs
    ops = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'ops')}"}
    now = utcnow()
    reminders = _all_reminders(intake, ops)
    on_list = Counter(item["kind"] for item in reminders)
    overdue = Counter(item["kind"] for item in reminders if _overdue(item, now))

    client = signed_in(settings)
    page = client.get("/worklist/overview")
    assert page.status_code == 200, page.text
    html = page.text
    shown_stages = dict(re.findall(r'<tr data-stage="([a-z_]*)"><th scope="row">[^<]+</th><td>(\d+)</td>', html))
    assert {k: int(v) for k, v in shown_stages.items() if k} == dict(stages)
    assert shown_stages[""] == "1"  # the patient not evaluated yet
    kinds = re.findall(
        r'<tr data-kind="([a-z0-9_]+)">.*?<td class="on-worklist">(\d+)</td><td class="overdue">(\d+)</td>', html
    )
    assert {k: int(n) for k, n, _ in kinds} == dict(on_list)
    assert {k: int(late) for k, _, late in kinds if int(late)} == dict(overdue)
    assert sum(overdue.values()) > 0
    assert "<svg" in html and 'aria-labelledby="stages-title stages-desc"' in html

    for gap in GAPS:
        section = re.search(rf'data-gap="{gap}" data-count="(\d+)">(.*?)</section>', html, re.S)
        assert section, gap
        listed = set(re.findall(r'data-patient-id="([^"]+)"', section.group(2)))
        expected = {pid for pid, name in story_of.items() if gap in STORIES[name][2]}
        assert expected, f"no story puts a patient in {gap}"
        assert listed == expected, (gap, Counter(story_of[p] for p in listed ^ expected))
        assert int(section.group(1)) == len(expected)
        assert other_id not in listed
    # Every listed patient links to a patient page that opens.
    first = re.search(r'href="(/worklist/patients/[^"]+)" data-patient-id', html)
    assert first and client.get(first.group(1)).status_code == 200
