"""One patient walked over HTTP through the whole pathway — initial evaluation, first line, second line,
refractory — with the opioid track (monitoring plan, 4-week review, dose increase, periodic review, stop)
and the PT track (referral, start, follow-ups), checked after each step against pathway-spec.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

T0 = (datetime.now(UTC) - timedelta(days=200)).replace(microsecond=0)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class Patient:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.headers = stack.token("org-walk", "client")
        response = httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": "MRN-WALK"}, headers=self.headers)
        assert response.status_code == 201, response.text
        self.id = response.json()["id"]
        self.posted = 0

    def post(self, *updates: tuple[str, float, dict]) -> dict:
        body = {
            "updates": [
                # each fact written with a different offset: the engine must compute in UTC regardless
                {
                    "type": t,
                    "occurred_at": day(d).astimezone(timezone(timedelta(hours=(i % 3) - 1))).isoformat(),
                    "data": data,
                }
                for i, (t, d, data) in enumerate(updates)
            ]
        }
        response = httpx.post(
            f"{self.stack.intake_url}/v1/patients/{self.id}/updates:batch", json=body, headers=self.headers, timeout=10
        )
        assert response.status_code == 202, response.text
        self.posted += len(updates)
        return wait_for(self._caught_up, what=f"the pathway to include {self.posted} updates")

    def _caught_up(self) -> dict | None:
        self.stack.assert_running()
        response = httpx.get(f"{self.stack.intake_url}/v1/patients/{self.id}/pathway", headers=self.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["updates_evaluated"] == self.posted else None


def flags(pathway: dict) -> set[str]:
    return {f["code"] for f in pathway["flags"]}


def deadline(pathway: dict, kind: str, due: datetime) -> str:
    found = [
        d["status"] for d in pathway["deadlines"] if d["kind"] == kind and datetime.fromisoformat(d["due_at"]) == due
    ]
    assert len(found) == 1, f"{kind} due {due.isoformat()} not in {pathway['deadlines']}"
    return found[0]


def since(pathway: dict) -> datetime:
    return datetime.fromisoformat(pathway["stage_since"])


def test_patient_walks_the_whole_pathway(stack: Stack) -> None:
    patient = Patient(stack)

    # 1. Surgery only: the initial evaluation is missing entirely [G1][G2].
    p = patient.post(("surgery", 0, {"procedure": "laminectomy", "levels": ["L4-L5"]}))
    assert p["stage"] == "initial_evaluation"
    assert {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"} <= flags(p)
    # rule set 2026.2: no initial-evaluation deadline while the episode holds nothing but its surgery
    assert not [d for d in p["deadlines"] if d["kind"] == "initial_evaluation_overdue"]
    assert all(r["citation"] for r in p["recommendations"])

    # 2. Pain/facet evaluation, MRI and neuro exam complete it: first line from the last of them.
    p = patient.post(
        ("pain_assessment", 5, {"pain_nrs": 8, "function_peg": 8, "distribution": "radicular"}),
        ("imaging", 6, {"modality": "mri", "findings": ["no_surgical_target"], "indication": "persistent pain"}),
        ("neuro_exam", 7, {"progressive_deficit": False}),
    )
    assert p["stage"] == "first_line" and since(p) == day(7)
    assert not {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"} & flags(p)
    assert deadline(p, "initial_evaluation_overdue", day(42)) == "satisfied"  # 2026.2: surgery + 28 + 14 days

    # 3. PT track: referral, then active PT; an NSAID course.
    p = patient.post(
        ("therapy", 8, {"kind": "physical_therapy", "status": "referred"}),
        ("medication", 9, {"drug_class": "nsaid", "action": "started"}),
        ("therapy", 10, {"kind": "physical_therapy", "status": "started", "modality": "active"}),
    )
    assert p["stage"] == "first_line"
    assert deadline(p, "pt_start_check", day(22)) == "satisfied"
    assert deadline(p, "pt_follow_up", day(38)) == "pending"
    assert deadline(p, "first_line_review", day(52)) == "pending"  # PT start + 42 days, no assessment yet

    # 4. Opioid track: plan documented (PDMP, urine test) the day before an opioid start.
    p = patient.post(
        ("opioid_monitoring", 11, {"plan_documented": True, "pdmp_checked": True, "urine_drug_test": True}),
        ("medication", 12, {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 40}),
        ("therapy", 30, {"kind": "physical_therapy", "status": "progress", "modality": "active"}),
    )
    assert deadline(p, "opioid_monitoring_plan", day(12)) == "satisfied"
    assert deadline(p, "opioid_review_4w", day(40)) == "pending"
    assert deadline(p, "pt_follow_up", day(38)) == "satisfied"  # the progress note
    assert deadline(p, "pt_follow_up", day(58)) == "pending"
    assert deadline(p, "pdmp_review", day(101)) == "pending"  # the check at day 11 + 90 days
    assert "opioid_tolerance_risk" in flags(p)  # on opioids continuously for far more than 28 days
    assert "opioid_before_non_opioid_trial" not in flags(p)  # the NSAID came first
    assert "opioid_monitoring_plan_missing" not in flags(p)

    # 5. The 4-week review (29 days into the opioid episode) finds no meaningful relief.
    p = patient.post(("opioid_review", 41, {"meaningful_relief": False, "pain_nrs": 8}))
    assert deadline(p, "opioid_review_4w", day(40)) == "satisfied"
    assert deadline(p, "opioid_review_periodic", day(131)) == "pending"
    assert "opioid_no_meaningful_relief" in flags(p)

    # 6. Dose increased to 60 MME/day: review within 4 weeks; naloxone now indicated [CDC22].
    p = patient.post(("medication", 45, {"drug_class": "opioid_ir", "action": "dose_increased", "mme_per_day": 60}))
    assert deadline(p, "opioid_review_dose_change", day(73)) == "pending"
    assert "naloxone_indicated" in flags(p)

    # 7. Six weeks of active PT and an NSAID, and an assessment ≥ 28 days after PT start with 8 → 7
    #    (12.5 %, not meaningful): the first-line trial failed → second line [G3].
    p = patient.post(("pain_assessment", 60, {"pain_nrs": 7, "function_peg": 7, "distribution": "radicular"}))
    assert p["stage"] == "second_line" and since(p) == day(60)
    assert deadline(p, "first_line_review", day(52)) == "satisfied"
    assert {"psychological_therapy_recommended", "radicular_pain"} <= flags(p)
    assert "responding_to_treatment" not in flags(p)

    # 8. CBT started, an image-guided transforaminal ESI, and the review after the dose change.
    p = patient.post(
        ("therapy", 62, {"kind": "cbt", "status": "started"}),
        (
            "procedure",
            70,
            {
                "kind": "epidural_steroid_injection",
                "approach": "transforaminal",
                "image_guided": True,
                "relief_percent": 20,
            },
        ),
        ("opioid_review", 71, {"meaningful_relief": False}),
    )
    assert "psychological_therapy_recommended" not in flags(p)
    assert "transforaminal_without_image_guidance" not in flags(p)
    assert deadline(p, "opioid_review_dose_change", day(73)) == "satisfied"
    assert deadline(p, "opioid_review_periodic", day(131)) == "satisfied"  # the next review came
    assert deadline(p, "opioid_review_periodic", day(161)) == "pending"
    assert deadline(p, "procedure_follow_up", day(84)) == "pending"
    # Psychological therapy started 56 days before day 118, a procedure done, still no relief → refractory.
    assert p["stage"] == "refractory" and since(p) == day(118)
    assert "multidisciplinary_rehab_recommended" in flags(p)

    # 9. Follow-up assessment after the procedure; the opioid is stopped; PT stopped.
    p = patient.post(
        ("pain_assessment", 80, {"pain_nrs": 7, "distribution": "radicular"}),
        ("medication", 130, {"drug_class": "opioid_ir", "action": "stopped"}),
    )
    assert deadline(p, "procedure_follow_up", day(84)) == "satisfied"
    assert deadline(p, "opioid_review_periodic", day(161)) == "cancelled"  # the opioid episode ended first
    assert not {"opioid_tolerance_risk", "naloxone_indicated"} & flags(p)
    assert p["stage"] == "refractory"  # escalation is one way within an episode

    history = httpx.get(f"{stack.intake_url}/v1/patients/{patient.id}/pathway/history", headers=patient.headers)
    assert history.status_code == 200
    stages = [item["stage"] for item in history.json()["items"]]
    assert stages[0] == "refractory" and stages[-1] == "initial_evaluation"
