"""Write what the CURRENT pathway engine says about a set of realistic patient stories, as test data.

    .venv/bin/python tests/data/make_rule_fixture.py          # -> tests/data/rules-<version>/patients.json

The output (facts, `now`, and each patient's exact `Assessment.to_dict()`) is committed, so a later rule set can
be tested against a database that really holds assessments made by this one (tests/e2e/test_rule_rollout.py).
It refuses to overwrite a file written by another rule set version: regenerate only with the engine it names.

The stories cover what rule set changes touch: day-2 post-operative pain scores, opioid courses (reviews,
dose changes, ER + benzodiazepine, high MME, long courses stopped), PT referred/started/stopped, procedures
of every kind, red flags, late enrolment, a second surgery and a future-dated fact. Identifiers are synthetic.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.pathway.rules import RULE_SET_VERSION, Fact, evaluate, params_for  # noqa: E402
from shared.updates import UpdateIn  # noqa: E402

NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("2b0e9a52-5f7e-4b7b-9a43-0c1d6c0f2026")
_UPDATE = TypeAdapter(UpdateIn)

Story = list[tuple[float, str, dict[str, Any]]]  # (days after the surgery date, type, data)


def _imaging() -> dict[str, Any]:
    return {"modality": "mri", "findings": ["no_surgical_target"]}


def _workup(day: float, pain: int, distribution: str = "radicular", **extra: Any) -> Story:
    """The initial evaluation: pain/facet assessment, MRI and a neuro exam without red flags."""
    return [
        (day, "pain_assessment", {"pain_nrs": pain, "distribution": distribution, **extra}),
        (day + 1, "imaging", _imaging()),
        (day + 1.1, "neuro_exam", {"progressive_deficit": False}),
    ]


def _first_line(day: float) -> Story:
    return [
        (day, "medication", {"drug_class": "nsaid", "action": "started"}),
        (day + 1, "therapy", {"kind": "physical_therapy", "status": "referred"}),
        (day + 8, "therapy", {"kind": "physical_therapy", "status": "started", "modality": "active"}),
    ]


def _opioid(day: float, mme: float | None = 30, drug_class: str = "opioid_ir") -> Story:
    data: dict[str, Any] = {"drug_class": drug_class, "action": "started"}
    if mme is not None:
        data["mme_per_day"] = mme
    return [(day, "medication", data)]


SURGERY = {"procedure": "laminectomy", "levels": ["L4-L5"]}

# key -> (surgery date, story). Day 0 is the surgery unless the story says otherwise.
STORIES: dict[str, tuple[datetime, Story]] = {
    "walkthrough-nsaid-then-opioid": (
        datetime(2026, 9, 1, 6, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(19, 7),
            (21, "medication", {"drug_class": "nsaid", "action": "started"}),
            (30, "opioid_monitoring", {"plan_documented": True}),
            *_opioid(31, 30),
            (22, "therapy", {"kind": "physical_therapy", "status": "referred"}),
        ],
    ),
    "day2-pain-9-then-plateau": (
        datetime(2026, 5, 4, 8, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            (2, "pain_assessment", {"pain_nrs": 9, "distribution": "radicular"}),
            (3, "imaging", _imaging()),
            (3.1, "neuro_exam", {"progressive_deficit": False}),
            *_first_line(30),
            (60, "pain_assessment", {"pain_nrs": 7, "distribution": "radicular"}),
            (95, "pain_assessment", {"pain_nrs": 7, "distribution": "radicular"}),
        ],
    ),
    "day2-pain-8-with-peg": (
        datetime(2026, 6, 10, 7, tzinfo=UTC),
        [
            (0, "surgery", {"procedure": "laminectomy_foraminotomy", "levels": ["L5-S1"]}),
            (2, "pain_assessment", {"pain_nrs": 8, "function_peg": 8, "distribution": "mixed"}),
            (2.2, "neuro_exam", {"progressive_deficit": False}),
            (4, "imaging", {"modality": "ct", "findings": []}),
            *_first_line(32),
            (80, "pain_assessment", {"pain_nrs": 6, "function_peg": 7, "distribution": "mixed"}),
        ],
    ),
    "opioid-no-relief-at-27-days-23-hours": (
        datetime(2026, 7, 1, 8, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            *_first_line(33),
            (40, "opioid_monitoring", {"plan_documented": True, "pdmp_checked": True, "urine_drug_test": True}),
            *_opioid(40, 40),
            (40 + 27 + 23 / 24, "opioid_review", {"meaningful_relief": False, "pain_nrs": 7}),
        ],
    ),
    "opioid-early-review-at-2-weeks": (
        datetime(2026, 7, 15, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(29, 6),
            *_first_line(30),
            (35, "opioid_monitoring", {"plan_documented": True, "pdmp_checked": True}),
            *_opioid(35, 20),
            (49, "opioid_review", {"meaningful_relief": True, "pain_nrs": 5}),
        ],
    ),
    "er-oxycodone-no-mme-plus-alprazolam": (
        datetime(2026, 6, 1, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(28, 8),
            (29, "medication", {"drug_class": "nsaid", "action": "started"}),
            *_opioid(45, None, "opioid_er"),
            (46, "medication", {"drug_class": "benzodiazepine", "action": "started", "name": "alprazolam"}),
        ],
    ),
    "high-mme-no-naloxone": (
        datetime(2026, 5, 20, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (38, "opioid_monitoring", {"plan_documented": True}),
            *_opioid(38, 30),
            (60, "medication", {"drug_class": "opioid_ir", "action": "dose_increased", "mme_per_day": 60}),
            (70, "opioid_review", {"meaningful_relief": True, "pain_nrs": 6}),
        ],
    ),
    "long-opioid-course-stopped": (
        datetime(2026, 3, 2, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            *_first_line(31),
            (35, "opioid_monitoring", {"plan_documented": True, "pdmp_checked": True, "urine_drug_test": True}),
            *_opioid(35, 25),
            (64, "opioid_review", {"meaningful_relief": True, "pain_nrs": 5}),
            (150, "opioid_review", {"meaningful_relief": True, "pain_nrs": 4}),
            (200, "medication", {"drug_class": "opioid_ir", "action": "stopped"}),
        ],
    ),
    "opioid-no-relief-after-3-weeks": (
        datetime(2026, 8, 3, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(28, 8),
            *_first_line(29),
            (30, "opioid_monitoring", {"plan_documented": True}),
            *_opioid(30, 45),
            (52, "opioid_review", {"meaningful_relief": False, "pain_nrs": 8, "tolerance_or_hyperalgesia": True}),
        ],
    ),
    "opioid-before-non-opioid": (
        datetime(2026, 9, 14, 9, tzinfo=UTC),
        [(0, "surgery", SURGERY), *_workup(29, 8), *_opioid(30, 20)],
    ),
    "opioid-relief-statement-pain-equals-baseline": (
        datetime(2026, 4, 6, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            *_first_line(31),
            (33, "opioid_monitoring", {"plan_documented": True}),
            *_opioid(33, 30),
            (62, "opioid_review", {"meaningful_relief": True, "pain_nrs": 7}),
            (80, "pain_assessment", {"pain_nrs": 7, "distribution": "radicular"}),
        ],
    ),
    "opioid-with-psychological-factors": (
        datetime(2026, 7, 20, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            *_first_line(31),
            (31.5, "psychosocial", {"factors": ["moderate_psychological_factors", "unemployed"]}),
            (40, "opioid_monitoring", {"plan_documented": True}),
            *_opioid(40, 15),
        ],
    ),
    "opioid-low-dose-gabapentinoid": (
        datetime(2026, 8, 10, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(28, 6),
            (29, "medication", {"drug_class": "gabapentinoid", "action": "started"}),
            (29.5, "psychosocial", {"factors": ["divorced", "family_support"]}),
            *_opioid(35, 10),
        ],
    ),
    "late-enrolment-two-years-after-surgery": (
        datetime(2024, 10, 1, 9, tzinfo=UTC),
        [(0, "surgery", SURGERY), (760, "pain_assessment", {"pain_nrs": 6, "distribution": "axial"})],
    ),
    "only-surgery-recent": (
        datetime(2026, 11, 2, 7, tzinfo=UTC),
        [(0, "surgery", {"procedure": "foraminotomy", "levels": ["L3-L4"]})],
    ),
    "no-surgery-recorded": (
        datetime(2026, 10, 1, 9, tzinfo=UTC),
        [(0, "pain_assessment", {"pain_nrs": 6, "distribution": "mixed"}), (5, "imaging", _imaging())],
    ),
    "foot-drop-then-clear-exam": (
        datetime(2026, 6, 22, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            (50, "neuro_exam", {"progressive_deficit": True}),
            (58, "neuro_exam", {"progressive_deficit": False}),
            *_first_line(59),
        ],
    ),
    "cauda-equina-open": (
        datetime(2026, 10, 5, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(29, 8),
            (41, "neuro_exam", {"progressive_deficit": False, "cauda_equina_signs": True}),
        ],
    ),
    "red-flag-then-repeat-surgery": (
        datetime(2026, 2, 2, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            (30, "pain_assessment", {"pain_nrs": 8, "distribution": "radicular"}),
            (31, "imaging", {"modality": "mri", "findings": ["recurrent_disc_herniation"]}),
            (31.1, "neuro_exam", {"progressive_deficit": True}),
            (40, "procedure", {"kind": "repeat_surgery"}),
            (75, "pain_assessment", {"pain_nrs": 4, "distribution": "axial"}),
        ],
    ),
    "second-surgery-new-episode": (
        datetime(2026, 1, 12, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (120, "surgery", {"procedure": "fusion", "levels": ["L4-L5"]}),
            (150, "pain_assessment", {"pain_nrs": 5, "distribution": "axial"}),
        ],
    ),
    "second-line-with-esi": (
        datetime(2026, 4, 13, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (85, "pain_assessment", {"pain_nrs": 8, "distribution": "radicular"}),
            (
                90,
                "procedure",
                {"kind": "epidural_steroid_injection", "approach": "transforaminal", "image_guided": True},
            ),
        ],
    ),
    "refractory-cbt-and-rfa-without-blocks": (
        datetime(2026, 2, 16, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8, "axial", facet_suspected=True),
            *_first_line(31),
            (85, "pain_assessment", {"pain_nrs": 8, "distribution": "axial", "facet_suspected": True}),
            (90, "therapy", {"kind": "cbt", "status": "started"}),
            (100, "procedure", {"kind": "radiofrequency_denervation", "image_guided": True}),
            (170, "pain_assessment", {"pain_nrs": 8, "distribution": "axial", "facet_suspected": True}),
        ],
    ),
    "facet-blocks-then-rfa": (
        datetime(2026, 3, 9, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7, "axial", facet_suspected=True),
            *_first_line(31),
            (86, "pain_assessment", {"pain_nrs": 7, "distribution": "axial", "facet_suspected": True}),
            (90, "procedure", {"kind": "medial_branch_block", "image_guided": True, "relief_percent": 80}),
            (97, "procedure", {"kind": "medial_branch_block", "image_guided": True, "relief_percent": 75}),
            (110, "procedure", {"kind": "radiofrequency_denervation", "image_guided": True}),
        ],
    ),
    "medial-branch-block-without-result": (
        datetime(2026, 6, 29, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7, "axial", facet_suspected=True),
            *_first_line(31),
            (100, "procedure", {"kind": "medial_branch_block", "image_guided": True}),
        ],
    ),
    "scs-trial-positive-axial-first-line": (
        datetime(2026, 7, 6, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 6, "axial"),
            *_first_line(31),
            (70, "procedure", {"kind": "scs_trial", "relief_percent": 60}),
        ],
    ),
    "scs-implant-follow-up": (
        datetime(2026, 1, 19, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (85, "pain_assessment", {"pain_nrs": 8, "distribution": "radicular"}),
            (90, "therapy", {"kind": "biofeedback", "status": "started"}),
            (100, "procedure", {"kind": "epidural_steroid_injection", "approach": "interlaminar"}),
            (170, "procedure", {"kind": "scs_trial", "relief_percent": 70}),
            (200, "procedure", {"kind": "scs_implant"}),
        ],
    ),
    "endoscopic-decompression": (
        datetime(2026, 5, 11, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 7),
            *_first_line(31),
            (120, "procedure", {"kind": "endoscopic_decompression"}),
        ],
    ),
    "tens-and-passive-pt": (
        datetime(2026, 8, 17, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 6, "axial", facet_suspected=True),
            (31, "medication", {"drug_class": "nsaid", "action": "started"}),
            (33, "therapy", {"kind": "physical_therapy", "status": "started", "modality": "passive"}),
            (35, "therapy", {"kind": "tens", "status": "started"}),
        ],
    ),
    "pt-referred-never-started": (
        datetime(2026, 8, 24, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(29, 6),
            (30, "medication", {"drug_class": "snri", "action": "started"}),
            (31, "therapy", {"kind": "physical_therapy", "status": "referred"}),
        ],
    ),
    "pt-started-progress-stopped": (
        datetime(2026, 5, 25, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 6),
            *_first_line(31),
            (
                60,
                "therapy",
                {"kind": "physical_therapy", "status": "progress", "modality": "active", "meaningful_relief": True},
            ),
            (75, "therapy", {"kind": "physical_therapy", "status": "stopped"}),
        ],
    ),
    "responding-pt-completed": (
        datetime(2026, 4, 20, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (70, "therapy", {"kind": "physical_therapy", "status": "progress", "modality": "active"}),
            (85, "pain_assessment", {"pain_nrs": 4, "distribution": "radicular"}),
            (95, "therapy", {"kind": "physical_therapy", "status": "completed"}),
        ],
    ),
    "baseline-zero-without-peg": (
        datetime(2026, 4, 27, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 0, "axial"),
            *_first_line(31),
            (90, "pain_assessment", {"pain_nrs": 3, "distribution": "axial"}),
        ],
    ),
    "late-worsening": (
        datetime(2026, 3, 23, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 6),
            *_first_line(31),
            (80, "pain_assessment", {"pain_nrs": 3, "distribution": "radicular"}),
            (190, "pain_assessment", {"pain_nrs": 8, "distribution": "radicular"}),
        ],
    ),
    "poor-prognosis-long-standing": (
        datetime(2026, 3, 30, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (
                31.2,
                "psychosocial",
                {
                    "factors": ["predominant_psychological_factors", "diffuse_complaints"],
                    "symptom_months_before_surgery": 30,
                },
            ),
            (85, "pain_assessment", {"pain_nrs": 8, "distribution": "mixed"}),
        ],
    ),
    "opioid-taper-monitoring-complete": (
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 8),
            *_first_line(31),
            (
                32,
                "opioid_monitoring",
                {"plan_documented": True, "pdmp_checked": True, "urine_drug_test": True, "naloxone_offered": True},
            ),
            *_opioid(32, 50),
            (61, "opioid_review", {"meaningful_relief": False, "pain_nrs": 8}),
            (62, "medication", {"drug_class": "opioid_ir", "action": "dose_decreased", "mme_per_day": 30}),
            (125, "opioid_monitoring", {"plan_documented": True, "pdmp_checked": True}),
            (150, "opioid_review", {"meaningful_relief": False, "pain_nrs": 7}),
        ],
    ),
    "future-dated-pt-start": (
        datetime(2026, 10, 12, 9, tzinfo=UTC),
        [
            (0, "surgery", SURGERY),
            *_workup(30, 6),
            (31, "medication", {"drug_class": "tca", "action": "started"}),
            (31.5, "therapy", {"kind": "physical_therapy", "status": "referred"}),
            (38, "therapy", {"kind": "physical_therapy", "status": "started", "modality": "active"}),
        ],
    ),
}


def _fact(key: str, index: int, surgery_at: datetime, day: float, type_name: str, data: dict[str, Any]) -> Fact:
    occurred = surgery_at + timedelta(days=day)
    update = _UPDATE.validate_python({"type": type_name, "occurred_at": occurred.isoformat(), "data": data})
    clean = update.data.model_dump(mode="json", exclude_none=True)  # as intake stores it
    return Fact(id=str(uuid.uuid5(NAMESPACE, f"{key}/{index}")), type=type_name, occurred_at=occurred, data=clean)


def build() -> dict[str, Any]:
    params = params_for()
    patients = []
    for key, (surgery_at, story) in STORIES.items():
        facts = [_fact(key, index, surgery_at, *item) for index, item in enumerate(story)]
        assessment = evaluate(facts, NOW, params).to_dict()
        patients.append(
            {
                "key": key,
                "patient_id": str(uuid.uuid5(NAMESPACE, key)),
                "facts": [
                    {"id": f.id, "type": f.type, "occurred_at": f.occurred_at.isoformat(), "data": dict(f.data)}
                    for f in facts
                ],
                "assessment": assessment,
            }
        )
    return {
        "rule_set_version": RULE_SET_VERSION,
        "profile": params.profile,
        "params_digest": params.digest(),
        "now": NOW.isoformat().replace("+00:00", "Z"),
        "generated_by": "tests/data/make_rule_fixture.py",
        "patients": patients,
    }


def main() -> int:
    out = ROOT / "tests" / "data" / f"rules-{RULE_SET_VERSION.rsplit('-', 1)[-1]}" / "patients.json"
    if out.exists() and json.loads(out.read_text())["rule_set_version"] != RULE_SET_VERSION:
        print(f"{out} was written by another rule set; not overwritten", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
