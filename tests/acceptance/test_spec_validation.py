"""Black-box acceptance of pathway-spec.md §1 validation through the real intake routes: every update
type's fields (required/optional), enums, ranges, RFC 3339 timestamps with an offset. Bad input is 422 with
a field-level message and nothing is stored (no update, no outbox event, no idempotency record)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carepath.apps import create_intake_app as create_app
from shared.auth import create_token
from shared.db.tables import IdempotencyRecord, OutboxMessage, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings

pytestmark = pytest.mark.integration

WHEN = "2026-03-01T09:30:00+01:00"

# A fully populated valid update of every type (every optional field given).
FULL: dict[str, dict[str, Any]] = {
    "surgery": {"procedure": "laminectomy_foraminotomy", "levels": ["L4-L5", "L5-S1"]},
    "pain_assessment": {"pain_nrs": 7, "function_peg": 6.3, "distribution": "mixed", "facet_suspected": True},
    "neuro_exam": {"progressive_deficit": False, "cauda_equina_signs": False},
    "imaging": {
        "modality": "mri",
        "findings": ["recurrent_disc_herniation", "instability"],
        "indication": "new weakness",
    },
    "medication": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 30, "name": "oxycodone"},
    "opioid_monitoring": {
        "plan_documented": True,
        "pdmp_checked": True,
        "urine_drug_test": False,
        "naloxone_offered": True,
    },
    "opioid_review": {"meaningful_relief": False, "pain_nrs": 6, "tolerance_or_hyperalgesia": True},
    "therapy": {"kind": "physical_therapy", "status": "started", "modality": "passive", "meaningful_relief": True},
    "procedure": {
        "kind": "epidural_steroid_injection",
        "approach": "transforaminal",
        "image_guided": True,
        "relief_percent": 55.5,
    },
    "psychosocial": {"factors": ["divorced", "high_motivation"], "symptom_months_before_surgery": 11.5},
}
# Only the required fields.
MINIMAL: dict[str, dict[str, Any]] = {
    "surgery": {"procedure": "other"},
    "pain_assessment": {"pain_nrs": 0, "distribution": "axial"},
    "neuro_exam": {"progressive_deficit": True},
    "imaging": {"modality": "xray", "findings": []},
    "medication": {"drug_class": "nsaid", "action": "stopped"},
    "opioid_monitoring": {"plan_documented": False},
    "opioid_review": {"meaningful_relief": True},
    "therapy": {"kind": "cbt", "status": "referred"},
    "procedure": {"kind": "scs_implant"},
    "psychosocial": {"factors": []},
}
REQUIRED = {
    "surgery": ["procedure"],
    "pain_assessment": ["pain_nrs", "distribution"],
    "neuro_exam": ["progressive_deficit"],
    "imaging": ["modality", "findings"],
    "medication": ["drug_class", "action"],
    "opioid_monitoring": ["plan_documented"],
    "opioid_review": ["meaningful_relief"],
    "therapy": ["kind", "status"],
    "procedure": ["kind"],
    "psychosocial": ["factors"],
}
ENUMS = {
    ("surgery", "procedure"): [
        "laminectomy",
        "foraminotomy",
        "laminectomy_foraminotomy",
        "discectomy",
        "fusion",
        "other",
    ],
    ("pain_assessment", "distribution"): ["axial", "radicular", "mixed"],
    ("imaging", "modality"): ["mri", "ct", "xray"],
    ("medication", "drug_class"): [
        "nsaid",
        "gabapentinoid",
        "sodium_channel_anticonvulsant",
        "tca",
        "snri",
        "opioid_ir",
        "opioid_er",
        "benzodiazepine",
        "other",
    ],
    ("medication", "action"): ["started", "dose_increased", "dose_decreased", "stopped"],
    ("therapy", "kind"): [
        "physical_therapy",
        "cbt",
        "biofeedback",
        "relaxation_training",
        "supportive_psychotherapy",
        "psychological_evaluation",
        "multidisciplinary_rehab",
        "tens",
    ],
    ("therapy", "status"): ["referred", "started", "progress", "completed", "stopped"],
    ("procedure", "kind"): [
        "epidural_steroid_injection",
        "medial_branch_block",
        "radiofrequency_denervation",
        "scs_trial",
        "scs_implant",
        "endoscopic_decompression",
        "repeat_surgery",
    ],
    ("procedure", "approach"): ["transforaminal", "interlaminar", "caudal"],
}
LIST_ENUMS = {
    ("imaging", "findings"): [
        "recurrent_disc_herniation",
        "inadequate_decompression",
        "instability",
        "adjacent_segment_disease",
        "nerve_entrapment_in_scar",
        "no_surgical_target",
    ],
    ("psychosocial", "factors"): [
        "high_motivation",
        "family_support",
        "good_function",
        "moderate_psychological_factors",
        "divorced",
        "unemployed",
        "diffuse_complaints",
        "predominant_psychological_factors",
        "secondary_gain",
    ],
}


def update(type_: str, data: dict[str, Any], occurred_at: Any = WHEN) -> dict[str, Any]:
    return {"type": type_, "occurred_at": occurred_at, "data": data}


def with_data(type_: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL[type_])
    data.update(changes)
    return update(type_, data)


def count(settings: Settings, table: Any) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        return uow.session.execute(select(func.count()).select_from(table)).scalar_one()


class Intake:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = TestClient(create_app())
        self.headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
        created = self.client.post("/v1/patients", json={"external_id": "MRN-V"}, headers=self.headers)
        assert created.status_code == 201, created.text
        self.patient = created.json()["id"]

    def post(self, body: Any, key: str | None = None) -> Any:
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        return self.client.post(f"/v1/patients/{self.patient}/updates", json=body, headers=headers)

    def batch(self, updates: list[Any]) -> Any:
        return self.client.post(
            f"/v1/patients/{self.patient}/updates:batch", json={"updates": updates}, headers=self.headers
        )

    def stored(self) -> tuple[int, int, int]:
        return (
            count(self.settings, PatientUpdate),
            count(self.settings, OutboxMessage),
            count(self.settings, IdempotencyRecord),
        )

    def assert_rejected(self, body: Any, field: str | None = None) -> None:
        before = self.stored()
        response = self.post(body, key="k-reject")
        assert response.status_code == 422, (body, response.text)
        assert "detail" in response.json(), response.text
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail and all(item.get("loc") and item.get("msg") for item in detail)
        if field is not None:
            assert any(field in [str(part) for part in item["loc"]] for item in detail), (field, detail)
        assert self.stored() == before, "nothing stored"
        # the what-if refuses the same update the same way
        what_if = self.client.post("/v1/pathway:evaluate", json={"updates": [body]}, headers=self.headers)
        assert what_if.status_code == 422, what_if.text


@pytest.fixture
def intake(settings: Settings) -> Intake:
    return Intake(settings)


# ---------------------------------------------------------------- valid updates are accepted and stored


def test_every_type_full_and_minimal_is_accepted(intake: Intake) -> None:
    bodies = [update(t, d) for t, d in FULL.items()] + [update(t, d) for t, d in MINIMAL.items()]
    for index, body in enumerate(bodies):
        response = intake.post(body)
        assert response.status_code == 202, (body, response.text)
        assert set(response.json()) >= {"update_id", "event_id"}
        assert intake.stored()[0] == index + 1


def test_every_enum_value_is_accepted(intake: Intake) -> None:
    updates = []
    for (type_, field), values in ENUMS.items():
        for value in values:
            data = copy.deepcopy(MINIMAL[type_])
            data[field] = value
            if type_ == "procedure" and field == "approach":
                data["kind"] = "epidural_steroid_injection"
            updates.append(update(type_, data))
    for (type_, field), values in LIST_ENUMS.items():
        updates.append(update(type_, {**MINIMAL[type_], field: values}))
    for modality in ("active", "passive"):
        for status in ("started", "progress"):
            updates.append(update("therapy", {"kind": "physical_therapy", "status": status, "modality": modality}))
    response = intake.batch(updates)
    assert response.status_code == 202, response.text
    assert intake.stored()[0] == len(updates)


BOUNDARY_ACCEPTED = [
    with_data("pain_assessment", pain_nrs=10, function_peg=0),
    with_data("pain_assessment", pain_nrs=0, function_peg=10),
    with_data("opioid_review", pain_nrs=10),
    with_data("opioid_review", pain_nrs=0),
    with_data("procedure", relief_percent=0),
    with_data("procedure", relief_percent=100),
    with_data("medication", drug_class="opioid_er", mme_per_day=0),
    with_data("medication", drug_class="opioid_ir", action="dose_increased", mme_per_day=120.5),
    with_data("psychosocial", symptom_months_before_surgery=0),
    with_data("psychosocial", symptom_months_before_surgery=12),
    update("surgery", {"procedure": "fusion"}, "2026-03-01T09:30:00Z"),
    update("surgery", {"procedure": "fusion"}, "2026-03-01T09:30:00.123456-05:00"),
    update("surgery", {"procedure": "fusion"}, "2026-03-01T09:30:00+05:30"),
    update("surgery", {"procedure": "fusion"}, "2026-03-01t09:30:00z"),
    update("surgery", {"procedure": "fusion"}, "2026-03-01 09:30:00-00:00"),
]


def test_boundary_values_are_accepted(intake: Intake) -> None:
    for index, body in enumerate(BOUNDARY_ACCEPTED):
        response = intake.post(body)
        assert response.status_code == 202, (body, response.text)
        assert intake.stored()[0] == index + 1


def test_defaults_and_offsets_are_kept_in_clinical_time(intake: Intake) -> None:
    """The what-if reads the same validated update: occurred_at with any offset is the same instant."""
    body = {
        "updates": [update("surgery", {"procedure": "laminectomy"}, "2026-03-01T04:30:00-05:00")],
        "now": "2026-03-01T10:30:00+01:00",
    }
    result = intake.client.post("/v1/pathway:evaluate", json=body, headers=intake.headers).json()
    assert result["evaluated_at"].startswith("2026-03-01T09:30:00")
    assert result["stage_since"].startswith("2026-03-01T09:30:00")


# ---------------------------------------------------------------- rejected: required fields


def test_missing_required_field(intake: Intake) -> None:
    for type_, fields in REQUIRED.items():
        for field in fields:
            data = copy.deepcopy(FULL[type_])
            del data[field]
            intake.assert_rejected(update(type_, data), field)


def test_missing_envelope_field(intake: Intake) -> None:
    for missing in ("type", "occurred_at", "data"):
        body = update("surgery", {"procedure": "laminectomy"})
        del body[missing]
        intake.assert_rejected(body, missing)


# ---------------------------------------------------------------- rejected: unknown types and fields


def test_unknown_type(intake: Intake) -> None:
    intake.assert_rejected(update("massage", {}), "type")
    intake.assert_rejected(update("Surgery", {"procedure": "laminectomy"}), "type")


def test_unknown_data_field(intake: Intake) -> None:
    for type_ in sorted(FULL):
        intake.assert_rejected(update(type_, {**FULL[type_], "comment": "x"}), "comment")


def test_unknown_envelope_field(intake: Intake) -> None:
    intake.assert_rejected({**update("surgery", {"procedure": "laminectomy"}), "received_at": WHEN}, "received_at")


# ---------------------------------------------------------------- rejected: enums


def test_wrong_enum_value(intake: Intake) -> None:
    for type_, field in sorted(ENUMS):
        intake.assert_rejected(update(type_, {**FULL[type_], field: "not_a_value"}), field)
        intake.assert_rejected(update(type_, {**FULL[type_], field: ENUMS[(type_, field)][0].upper()}), field)


def test_wrong_list_enum_value(intake: Intake) -> None:
    for type_, field in sorted(LIST_ENUMS):
        first = LIST_ENUMS[(type_, field)][0]
        intake.assert_rejected(update(type_, {**FULL[type_], field: [first, "bogus"]}), field)
        intake.assert_rejected(update(type_, {**FULL[type_], field: first}), field)


def test_pt_modality_enum_and_scope(intake: Intake) -> None:
    intake.assert_rejected(
        with_data("therapy", kind="physical_therapy", status="started", modality="mixed"), "modality"
    )
    # modality is for physical_therapy started/progress only; a referral has none
    intake.assert_rejected(with_data("therapy", kind="physical_therapy", status="referred", modality="active"))
    intake.assert_rejected(with_data("therapy", kind="cbt", status="started", modality="active"))


# ---------------------------------------------------------------- rejected: ranges and kinds of value

OUT_OF_RANGE = [
    ("pain_assessment", "pain_nrs", 11),
    ("pain_assessment", "pain_nrs", -1),
    ("pain_assessment", "pain_nrs", 7.5),
    ("pain_assessment", "pain_nrs", "7"),
    ("pain_assessment", "pain_nrs", True),
    ("pain_assessment", "function_peg", 10.01),
    ("pain_assessment", "function_peg", -0.5),
    ("pain_assessment", "function_peg", "5"),
    ("pain_assessment", "facet_suspected", "yes"),
    ("pain_assessment", "facet_suspected", 1),
    ("neuro_exam", "progressive_deficit", "false"),
    ("neuro_exam", "cauda_equina_signs", 0),
    ("neuro_exam", "progressive_deficit", None),
    ("opioid_review", "pain_nrs", 11),
    ("opioid_review", "pain_nrs", -1),
    ("opioid_review", "meaningful_relief", "true"),
    ("opioid_monitoring", "pdmp_checked", "yes"),
    ("opioid_monitoring", "plan_documented", 1),
    ("procedure", "relief_percent", 100.5),
    ("procedure", "relief_percent", -1),
    ("procedure", "relief_percent", "50"),
    ("procedure", "image_guided", "true"),
    ("medication", "mme_per_day", -1),
    ("medication", "mme_per_day", "30"),
    ("psychosocial", "symptom_months_before_surgery", -0.1),
    ("psychosocial", "symptom_months_before_surgery", "6"),
    ("surgery", "levels", "L4-L5"),
    ("surgery", "levels", [45]),
    ("imaging", "findings", None),
    ("imaging", "indication", 12),
    ("therapy", "meaningful_relief", "no"),
]


def test_out_of_range_or_wrong_kind(intake: Intake) -> None:
    for type_, field, value in OUT_OF_RANGE:
        intake.assert_rejected(update(type_, {**FULL[type_], field: value}), field)


def test_data_must_be_an_object(intake: Intake) -> None:
    intake.assert_rejected(update("surgery", ["laminectomy"]))  # type: ignore[arg-type]
    intake.assert_rejected(update("surgery", None))  # type: ignore[arg-type]


# ---------------------------------------------------------------- rejected: timestamps

BAD_TIMES = [
    "2026-03-01T09:30:00",  # naive
    "2026-03-01 09:30:00",  # naive
    "2026-03-01",  # date only
    "2026-03-01T09:30+01:00",  # no seconds (not RFC 3339)
    "2026-03-01T09:30:00+0100",  # offset without colon (not RFC 3339)
    "2026-03-01T09:30:00+01",  # truncated offset
    "09:30:00+01:00",  # time only
    "2026-03-01T25:30:00+01:00",  # impossible hour
    "2026-02-30T09:30:00Z",  # impossible date
    "yesterday",
    "",
    1772353800,  # epoch seconds
    None,
]


def test_bad_occurred_at(intake: Intake) -> None:
    for occurred_at in BAD_TIMES:
        intake.assert_rejected(update("surgery", {"procedure": "laminectomy"}, occurred_at), "occurred_at")


def test_what_if_now_must_have_an_offset(intake: Intake) -> None:
    body = {"updates": [update("surgery", {"procedure": "laminectomy"})], "now": "2026-03-02T09:30:00"}
    response = intake.client.post("/v1/pathway:evaluate", json=body, headers=intake.headers)
    assert response.status_code == 422
    assert any("now" in [str(p) for p in item["loc"]] for item in response.json()["detail"])
    body["surprise"] = 1
    body["now"] = "2026-03-02T09:30:00Z"
    assert intake.client.post("/v1/pathway:evaluate", json=body, headers=intake.headers).status_code == 422


# ---------------------------------------------------------------- batches: all or nothing, located errors


def test_batch_with_one_bad_update_stores_nothing(intake: Intake) -> None:
    good = update("surgery", {"procedure": "laminectomy"})
    bad = update("pain_assessment", {"pain_nrs": 12, "distribution": "axial"})
    response = intake.batch([good, good, bad])
    assert response.status_code == 422
    locs = [item["loc"] for item in response.json()["detail"]]
    assert any(loc[:3] == ["body", "updates", 2] and "pain_nrs" in loc for loc in locs), locs
    assert intake.stored() == (0, 0, 0)
    naive = intake.batch([good, update("surgery", {"procedure": "fusion"}, "2026-03-01T09:30:00")])
    assert naive.status_code == 422 and intake.stored() == (0, 0, 0)
    assert intake.batch([]).status_code == 422
    assert intake.batch([good, good]).status_code == 202
    assert intake.stored()[0] == 2


def test_stored_update_round_trips_into_the_pathway(intake: Intake) -> None:
    """An accepted update counts in updates_evaluated once the worker has evaluated it (contract), and the
    stored data is what was posted (no invented fields)."""
    body = update("pain_assessment", {"pain_nrs": 5, "distribution": "axial"}, "2026-03-01T09:30:00-03:00")
    assert intake.post(body).status_code == 202
    with UnitOfWork(intake.settings, read_only=True) as uow:
        row = uow.session.execute(select(PatientUpdate)).scalar_one()
        assert row.type == "pain_assessment"
        assert row.data["pain_nrs"] == 5 and row.data["distribution"] == "axial"
        assert row.occurred_at.utcoffset() is None or row.occurred_at.utcoffset().total_seconds() == 0
        assert row.occurred_at.replace(tzinfo=None).isoformat().startswith("2026-03-01T12:30:00")
