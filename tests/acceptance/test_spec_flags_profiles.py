"""Black-box acceptance of pathway-spec.md §4 (flags and recommendations), §5 (policy profiles) and §6
(the Assessment output) through HTTP: the what-if route `POST /v1/pathway:evaluate` (fact ids are "u0",
"u1", … by position) and `GET /v1/patients/{id}/pathway`. Every expectation is derived from the spec text;
where the spec is ambiguous the reading of docs/clinical-rules.md §7 is cited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app as create_app
from shared.auth import create_token
from shared.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SOURCES = {"G1", "G2", "G3", "G4", "G5", "G6", "CDC22", "IMMPACT", "NICE NG59", "NICE TA159", "CMS LCD"}
ALL_FLAGS = {
    "surgical_history_missing",
    "red_flag_neuro",
    "imaging_needed",
    "neuro_exam_needed",
    "pain_assessment_needed",
    "surgical_target_on_imaging",
    "nerve_entrapment_in_scar",
    "facet_pain_suspected",
    "mbb_positive",
    "radicular_pain",
    "transforaminal_without_image_guidance",
    "passive_pt_only",
    "opioid_before_non_opioid_trial",
    "opioid_monitoring_plan_missing",
    "opioid_no_meaningful_relief",
    "opioid_tolerance_risk",
    "naloxone_indicated",
    "opioid_benzodiazepine_coprescription",
    "psychological_therapy_recommended",
    "multidisciplinary_rehab_recommended",
    "scs_psychological_evaluation_needed",
    "scs_trial_positive",
    "scs_trial_negative",
    "tens_caution",
    "imaging_without_indication",
    "er_opioid_before_first_line_failed",
    "esi_without_radicular_pain",
    "scs_before_other_therapies",
    "repeat_surgery_criteria_unmet",
    "responding_to_treatment",
    "poor_prognostic_factors",
    "good_prognostic_factors",
    # new in 2026.2
    "surgical_evaluation_pending",
    "rfa_without_positive_blocks",
    "neuropathic_agent_not_tried",
    "active_pt_not_started",
    "non_opioid_not_started",
    "pt_not_started",
    "pain_worsening",
    "opioid_tolerance_or_hyperalgesia_reported",
    "opioid_mme_unknown",
    "scs_implant_criteria_unmet",
}


# ---------------------------------------------------------------- update builders (days after T0, UTC)


def ts(days: float, seconds: float = 0, offset_hours: int = 0) -> str:
    tz = UTC if offset_hours == 0 else __import__("datetime").timezone(timedelta(hours=offset_hours))
    return (T0 + timedelta(days=days, seconds=seconds)).astimezone(tz).isoformat()


def upd(type_: str, day: float, data: dict[str, Any], seconds: float = 0) -> dict[str, Any]:
    return {"type": type_, "occurred_at": ts(day, seconds), "data": data}


def surgery(day: float, procedure: str = "laminectomy") -> dict[str, Any]:
    return upd("surgery", day, {"procedure": procedure, "levels": ["L4-L5"]})


def pain(
    day: float, nrs: int, dist: str = "axial", facet: bool | None = None, peg: float | None = None, seconds: float = 0
) -> dict[str, Any]:
    data: dict[str, Any] = {"pain_nrs": nrs, "distribution": dist}
    if facet is not None:
        data["facet_suspected"] = facet
    if peg is not None:
        data["function_peg"] = peg
    return upd("pain_assessment", day, data, seconds)


def neuro(day: float, deficit: bool = False, cauda: bool | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"progressive_deficit": deficit}
    if cauda is not None:
        data["cauda_equina_signs"] = cauda
    return upd("neuro_exam", day, data)


def imaging(
    day: float,
    modality: str = "mri",
    findings: tuple[str, ...] = ("no_surgical_target",),
    indication: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"modality": modality, "findings": list(findings)}
    if indication is not None:
        data["indication"] = indication
    return upd("imaging", day, data)


def med(
    day: float, drug_class: str, action: str = "started", mme: float | None = None, seconds: float = 0
) -> dict[str, Any]:
    data: dict[str, Any] = {"drug_class": drug_class, "action": action}
    if mme is not None:
        data["mme_per_day"] = mme
    return upd("medication", day, data, seconds)


def monitoring(day: float, plan: bool = False, **more: bool) -> dict[str, Any]:
    return upd("opioid_monitoring", day, {"plan_documented": plan, **more})


def review(day: float, relief: bool, seconds: float = 0) -> dict[str, Any]:
    return upd("opioid_review", day, {"meaningful_relief": relief}, seconds)


def therapy(
    day: float, kind: str, status: str = "started", modality: str | None = None, relief: bool | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": kind, "status": status}
    if modality is not None:
        data["modality"] = modality
    if relief is not None:
        data["meaningful_relief"] = relief
    return upd("therapy", day, data)


def proc(day: float, kind: str, seconds: float = 0, **data: Any) -> dict[str, Any]:
    return upd("procedure", day, {"kind": kind, **data}, seconds)


def psychosocial(day: float, factors: list[str], months: float | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"factors": factors}
    if months is not None:
        data["symptom_months_before_surgery"] = months
    return upd("psychosocial", day, data)


def evaluation_complete(day: float = 1, dist: str = "radicular", nrs: int = 8) -> list[dict[str, Any]]:
    """Initial evaluation complete on `day`: MRI, neuro exam, pain assessment (the baseline)."""
    return [imaging(day), neuro(day), pain(day, nrs, dist)]


def second_line_history(dist: str = "radicular") -> list[dict[str, Any]]:
    """Surgery d0, evaluation d1 -> first line; active PT + NSAID d2; no relief at d30 -> second line at
    d44 (PT start + 42 days). Positions u0..u6."""
    return [
        surgery(0),
        *evaluation_complete(1, dist),
        therapy(2, "physical_therapy", modality="active"),
        med(2, "nsaid"),
        pain(30, 8, dist),
    ]


def refractory_history(dist: str = "radicular") -> list[dict[str, Any]]:
    """second_line_history + CBT started d45 + ESI (interventional) d46 -> refractory at d101 (CBT + 56).
    Positions u7 (CBT), u8 (ESI)."""
    return [
        *second_line_history(dist),
        therapy(45, "cbt"),
        proc(46, "epidural_steroid_injection", approach="interlaminar", image_guided=True),
    ]


# ---------------------------------------------------------------- HTTP helpers


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app())


class Api:
    def __init__(self, client: TestClient, settings: Settings, org: str = "org-a") -> None:
        self.client = client
        self.settings = settings
        self.org = org
        self.headers = {"Authorization": f"Bearer {create_token(settings, org, 'client')}"}

    def evaluate(self, updates: list[dict[str, Any]], now_day: float, now_seconds: float = 0) -> dict[str, Any]:
        body = {"updates": updates, "now": ts(now_day, now_seconds)}
        response = self.client.post("/v1/pathway:evaluate", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, profile: str, overrides: dict[str, Any] | None = None) -> None:
        ops = {"Authorization": f"Bearer {create_token(self.settings, self.org, 'ops')}"}
        response = self.client.put(
            "/v1/organisation/pathway-config", json={"profile": profile, "overrides": overrides or {}}, headers=ops
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def api(client: TestClient, settings: Settings) -> Api:
    return Api(client, settings)


def flags(result: dict[str, Any]) -> dict[str, list[str]]:
    """flag code -> fact ids."""
    return {flag["code"]: sorted(flag["fact_ids"]) for flag in result["flags"]}


def recs(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rec["code"]: rec for rec in result["recommendations"]}


# ---------------------------------------------------------------- §6 output shape

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def test_assessment_shape_and_explanations(api: Api) -> None:
    result = api.evaluate(second_line_history(), 50)
    for key in (
        "stage",
        "stage_since",
        "rule_set_version",
        "profile",
        "params_digest",
        "evaluated_at",
        "next_evaluation_at",
        "flags",
        "recommendations",
        "deadlines",
    ):
        assert key in result, key
    assert result["rule_set_version"] == "lbp-postlam-2026.2"
    assert result["profile"] == "asra-2020"
    assert re.fullmatch(r"[0-9a-f]{64}", result["params_digest"]) or len(result["params_digest"]) >= 16
    assert result["stage"] == "second_line"
    assert ISO_Z.match(result["stage_since"]) and result["stage_since"].startswith("2026-02-18T09:00:00")
    assert ISO_Z.match(result["evaluated_at"]) and result["evaluated_at"].startswith("2026-02-24T09:00:00")
    assert result["next_evaluation_at"] is None or ISO_Z.match(result["next_evaluation_at"])
    # every flag has exactly one recommendation; each names the fact ids of the flag
    assert [f["code"] for f in result["flags"]] and {f["code"] for f in result["flags"]} <= ALL_FLAGS
    assert {r["code"] for r in result["recommendations"]} == {f["code"] for f in result["flags"]}
    for flag in result["flags"]:
        assert isinstance(flag["fact_ids"], list)
        assert set(flag["fact_ids"]) <= {f"u{i}" for i in range(7)}
    for rec in result["recommendations"]:
        assert rec["text"] and rec["citation"]
        assert set(rec["citation"].split("; ")) <= SOURCES, rec
        assert "fact_ids" in rec
    for deadline in result["deadlines"]:
        assert {"kind", "due_at", "status", "fact_ids"} <= set(deadline)
        assert deadline["status"] in ("pending", "satisfied", "cancelled")
        assert ISO_Z.match(deadline["due_at"])
        assert deadline["fact_ids"] and set(deadline["fact_ids"]) <= {f"u{i}" for i in range(7)}


def test_offsets_are_normalised_to_utc_in_output(api: Api) -> None:
    updates = [{"type": "surgery", "occurred_at": "2026-01-05T04:00:00-05:00", "data": {"procedure": "laminectomy"}}]
    result = api.client.post(
        "/v1/pathway:evaluate", json={"updates": updates, "now": "2026-01-06T10:00:00+01:00"}, headers=api.headers
    ).json()
    assert result["evaluated_at"].startswith("2026-01-06T09:00:00")
    assert ISO_Z.match(result["evaluated_at"])
    assert result["deadlines"] == []  # an episode holding nothing but its surgery has no deadline (2026.2)
    updates.append(
        {"type": "neuro_exam", "occurred_at": "2026-01-06T04:00:00-05:00", "data": {"progressive_deficit": False}}
    )
    result = api.client.post(
        "/v1/pathway:evaluate", json={"updates": updates, "now": "2026-01-06T10:00:00+01:00"}, headers=api.headers
    ).json()
    due = {d["kind"]: d["due_at"] for d in result["deadlines"]}
    assert due["initial_evaluation_overdue"].startswith("2026-02-16T09:00:00")  # surgery + 28 + 14 days


def test_get_pathway_has_contract_fields(api: Api) -> None:
    created = api.client.post("/v1/patients", json={"external_id": "MRN-SHAPE"}, headers=api.headers)
    patient = created.json()["id"]
    body = api.client.get(f"/v1/patients/{patient}/pathway", headers=api.headers).json()
    for key in (
        "patient_id",
        "stage",
        "stage_since",
        "rule_set_version",
        "profile",
        "evaluated_at",
        "next_evaluation_at",
        "updates_evaluated",
        "flags",
        "recommendations",
        "deadlines",
    ):
        assert key in body, key
    assert body["patient_id"] == patient and body["updates_evaluated"] == 0
    assert body["profile"] == "asra-2020" and body["params_digest"]
    assert body["stage"] == "initial_evaluation"


def test_empty_history(api: Api) -> None:
    result = api.evaluate([], 0)
    assert result["stage"] == "initial_evaluation" and result["deadlines"] == []
    assert set(flags(result)) == {
        "surgical_history_missing",
        "imaging_needed",
        "neuro_exam_needed",
        "pain_assessment_needed",
    }


def test_future_facts_do_not_raise_flags(api: Api) -> None:
    result = api.evaluate([surgery(0), med(5, "opioid_ir", mme=90)], 3)
    assert "opioid_before_non_opioid_trial" not in flags(result)
    assert "naloxone_indicated" not in flags(result)
    assert result["next_evaluation_at"].startswith(ts(5)[:19])


# ---------------------------------------------------------------- §4 recommendations: text and citation

EXPECTED_CITATIONS = {
    "surgical_history_missing": "G1",
    "red_flag_neuro": "G1",
    "imaging_needed": "G1; G2",
    "neuro_exam_needed": "G1; G2",
    "pain_assessment_needed": "G1; G2",
    "surgical_target_on_imaging": "G1",
    "nerve_entrapment_in_scar": "G5",
    "facet_pain_suspected": "G2; G3",
    "mbb_positive": "G3",
    "radicular_pain": "G3",
    "transforaminal_without_image_guidance": "G3",
    "passive_pt_only": "G1",
    "opioid_before_non_opioid_trial": "G3",
    "opioid_monitoring_plan_missing": "G3",
    "opioid_no_meaningful_relief": "G3; CDC22",
    "opioid_tolerance_risk": "G3",
    "naloxone_indicated": "CDC22",
    "opioid_benzodiazepine_coprescription": "CDC22",
    "psychological_therapy_recommended": "G3",
    "multidisciplinary_rehab_recommended": "G6",
    "scs_psychological_evaluation_needed": "NICE TA159; CMS LCD",
    "tens_caution": "G3; NICE NG59",
    "imaging_without_indication": "G1",
    "er_opioid_before_first_line_failed": "G3",
    "esi_without_radicular_pain": "G3",
    "scs_before_other_therapies": "G3",
    "repeat_surgery_criteria_unmet": "G1",
    "responding_to_treatment": "IMMPACT",
    "poor_prognostic_factors": "G4",
    "good_prognostic_factors": "G4; G1",
    "surgical_evaluation_pending": "G1",
    "rfa_without_positive_blocks": "G3; CMS LCD",
    "neuropathic_agent_not_tried": "G3",
    "active_pt_not_started": "G1",
    "non_opioid_not_started": "G3",
    "pt_not_started": "G1",
    "pain_worsening": "G1",
    "opioid_tolerance_or_hyperalgesia_reported": "G3",
    "opioid_mme_unknown": "CDC22",
    "scs_trial_positive": "G3; NICE TA159; CMS LCD",
    "scs_implant_criteria_unmet": "G3; NICE TA159; CMS LCD",
    "scs_trial_negative": "NICE TA159",
}
# The spec's recommendation phrase of each row (case-insensitive substring of the text).
EXPECTED_TEXT = {
    "surgical_history_missing": "confirm surgical history",
    "red_flag_neuro": "prompt surgical evaluation",
    "imaging_needed": "obtain mri/ct",
    "neuro_exam_needed": "neuro assessment",
    "pain_assessment_needed": "pain and facet evaluation",
    "surgical_target_on_imaging": "repeat surgery only after conservative care fails, with a clear target",
    "nerve_entrapment_in_scar": "consider percutaneous transforaminal endoscopic decompression",
    "facet_pain_suspected": "medial branch blocks, then radiofrequency denervation if positive",
    "mbb_positive": "radiofrequency denervation",
    "radicular_pain": "image-guided epidural steroid injection; spinal cord stimulation if persistent after "
    "other therapies",
    "transforaminal_without_image_guidance": "use image guidance",
    "passive_pt_only": "active pt, core strengthening, stabilisation",
    "opioid_before_non_opioid_trial": "try non-opioids first",
    "opioid_monitoring_plan_missing": "monitoring strategy before long-term opioids",
    "opioid_no_meaningful_relief": "unlikely to benefit from longer-term use: taper or stop, and follow up at least "
    "monthly",
    "opioid_tolerance_risk": "tolerance and hyperalgesia can develop within 4 weeks",
    "naloxone_indicated": "offer naloxone",
    "opioid_benzodiazepine_coprescription": "avoid concurrent use",
    "psychological_therapy_recommended": "cbt, biofeedback or relaxation training",
    "multidisciplinary_rehab_recommended": "multidisciplinary pain rehabilitation",
    "scs_psychological_evaluation_needed": "psychological evaluation before scs",
    "scs_trial_positive": "implant may be considered",
    "scs_trial_negative": "do not implant",
    "tens_caution": "nice ng59 advises against tens for low back pain",
    "imaging_without_indication": "avoid routine imaging without specific clinical indications",
    "er_opioid_before_first_line_failed": "extended-release opioids only for pain unresponsive to other treatments",
    "esi_without_radicular_pain": "epidural steroid injections are for radicular pain",
    "scs_before_other_therapies": "spinal cord stimulation for persistent radicular pain after other therapies",
    "repeat_surgery_criteria_unmet": "repeat surgery only after conservative care fails and with a clear "
    "surgical target",
    "responding_to_treatment": "continue current plan",
    "poor_prognostic_factors": "context for the coordinator",
    "good_prognostic_factors": "context for the coordinator",
    "surgical_evaluation_pending": "a red flag was found and no surgical evaluation is recorded since: complete the "
    "referral",
    "rfa_without_positive_blocks": "rfa only after positive diagnostic medial branch blocks",
    "neuropathic_agent_not_tried": "for the neuropathic component consider an anticonvulsant (α-2-δ or "
    "sodium-channel) or an antidepressant (tca or snri)",
    "active_pt_not_started": "refer to active physical therapy: core strengthening and stabilisation",
    "non_opioid_not_started": "try a non-opioid analgesic (nsaid first)",
    "pt_not_started": "the pt referral has not started after 4 weeks: contact the patient and the provider",
    "pain_worsening": "pain is worsening: reassess; late deterioration may reflect postoperative instability — "
    "image with that indication if needed",
    "opioid_tolerance_or_hyperalgesia_reported": "tolerance or opioid-induced hyperalgesia reported: reassess and "
    "consider a taper rather than a dose increase",
    "opioid_mme_unknown": "record the daily dose in mme so that dose thresholds can be checked",
    "scs_implant_criteria_unmet": "do not implant yet",
}


def _kitchen_sink() -> list[dict[str, Any]]:
    """A history that raises (nearly) every flag at once, evaluated at day 200 (refractory)."""
    return [
        *refractory_history(),  # u0..u8
        imaging(1, "ct", ("recurrent_disc_herniation", "nerve_entrapment_in_scar")),  # u9
        pain(3, 8, "radicular", facet=True),  # u10
        proc(60, "medial_branch_block", relief_percent=60),  # u11
        proc(61, "epidural_steroid_injection", approach="transforaminal", image_guided=False),  # u12
        med(0.5, "opioid_er", mme=60),  # u13 (before any non-opioid)
        med(0.5, "benzodiazepine"),  # u14
        review(40, False),  # u15
        proc(10, "scs_trial", relief_percent=40),  # u16
        therapy(4, "tens"),  # u17
        imaging(20, "xray"),  # u18 no indication
        proc(30, "repeat_surgery"),  # u19 (first line)
        psychosocial(1, ["divorced", "high_motivation"], months=6),  # u20
    ]


def test_every_recommendation_text_and_citation(api: Api) -> None:
    result = api.evaluate(_kitchen_sink(), 200)
    by_code = recs(result)
    for code, rec in by_code.items():
        assert set(rec["citation"].split("; ")) <= SOURCES, rec
        assert re.fullmatch(r"[A-Za-z0-9 ]+(; [A-Za-z0-9 ]+)*", rec["citation"]), rec
        if code in EXPECTED_CITATIONS:
            assert rec["citation"] == EXPECTED_CITATIONS[code], rec
        assert EXPECTED_TEXT[code] in rec["text"].lower(), rec
        assert rec["fact_ids"] == flags(result)[code]
    expected_here = {  # surgical_target_on_imaging retired by the repeat surgery u19 after it (7.10)
        "nerve_entrapment_in_scar",
        "facet_pain_suspected",
        "mbb_positive",
        "radicular_pain",
        "transforaminal_without_image_guidance",
        "opioid_before_non_opioid_trial",
        "opioid_monitoring_plan_missing",
        "opioid_no_meaningful_relief",
        "opioid_tolerance_risk",
        "naloxone_indicated",
        "opioid_benzodiazepine_coprescription",
        "multidisciplinary_rehab_recommended",
        "scs_psychological_evaluation_needed",
        "scs_trial_negative",
        "tens_caution",
        "imaging_without_indication",
        "er_opioid_before_first_line_failed",
        "scs_before_other_therapies",
        "repeat_surgery_criteria_unmet",
        "poor_prognostic_factors",
        "good_prognostic_factors",
    }
    assert result["stage"] == "refractory"
    assert expected_here <= set(by_code), expected_here - set(by_code)


def test_initial_evaluation_and_history_texts(api: Api) -> None:
    by_code = recs(api.evaluate([neuro(0, deficit=True)], 1))
    for code in ("surgical_history_missing", "red_flag_neuro", "imaging_needed", "pain_assessment_needed"):
        assert EXPECTED_TEXT[code] in by_code[code]["text"].lower()
        assert by_code[code]["citation"] == EXPECTED_CITATIONS[code]
    assert "neuro_exam_needed" not in by_code  # a red-flag exam is a neuro exam (§7.23)


def test_profile_named_where_profile_decides(api: Api) -> None:
    updates = [surgery(0), proc(5, "medial_branch_block", relief_percent=90), therapy(6, "tens")]
    by_code = recs(api.evaluate(updates, 10))
    assert "asra-2020" in by_code["mbb_positive"]["text"]
    # 7.11: the TENS caution names NICE NG59, not the facet profile
    assert "asra-2020" not in by_code["tens_caution"]["text"] and "NICE NG59" in by_code["tens_caution"]["text"]
    assert (
        "asra-2020" not in by_code["surgical_history_missing"]["text"]
        if "surgical_history_missing" in by_code
        else True
    )
    api.configure("us-medicare-lcd")
    updates.append(proc(19, "medial_branch_block", relief_percent=85))
    by_code = recs(api.evaluate(updates, 20))
    assert "us-medicare-lcd" in by_code["mbb_positive"]["text"]
    assert "us-medicare-lcd" not in by_code["tens_caution"]["text"]
    assert "CMS LCD" in by_code["mbb_positive"]["text"]  # §5: names the profile and its source


# ---------------------------------------------------------------- §4 rows one by one


def test_surgical_history_missing(api: Api) -> None:
    assert "surgical_history_missing" in flags(api.evaluate([surgery(0, "discectomy"), surgery(5, "fusion")], 10))
    assert "surgical_history_missing" in flags(api.evaluate([surgery(0, "other")], 10))
    for procedure in ("laminectomy", "foraminotomy", "laminectomy_foraminotomy"):
        # all facts: an index operation in an earlier episode still counts
        result = api.evaluate([surgery(0, procedure), surgery(5, "fusion")], 10)
        assert "surgical_history_missing" not in flags(result), procedure


def test_red_flag_neuro_and_pathway_underneath(api: Api) -> None:
    updates = [*second_line_history(), neuro(48, cauda=True)]  # u7 red flag
    result = api.evaluate(updates, 50)
    assert result["stage"] == "urgent_surgical_evaluation"
    assert flags(result)["red_flag_neuro"] == ["u7"]
    # stage-dependent flags use the pathway stage (second line) also while urgent
    assert "radicular_pain" in flags(result) and "psychological_therapy_recommended" in flags(result)
    cleared = api.evaluate([*updates, neuro(49)], 50)
    assert cleared["stage"] == "second_line" and "red_flag_neuro" not in flags(cleared)


def test_initial_evaluation_parts_use_the_episode(api: Api) -> None:
    before = [imaging(1), neuro(1), pain(1, 8)]
    result = api.evaluate([*before, surgery(5)], 10)  # a new episode: the parts must be repeated
    assert {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"} <= set(flags(result))
    xray_only = api.evaluate([surgery(0), imaging(1, "xray"), neuro(1), pain(1, 8)], 2)
    assert set(flags(xray_only)) & {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"} == {
        "imaging_needed"
    }
    ct = api.evaluate([surgery(0), imaging(1, "ct"), neuro(1), pain(1, 8)], 2)
    assert not set(flags(ct)) & {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"}
    assert ct["stage"] == "first_line"


def test_surgical_target_on_imaging(api: Api) -> None:
    for finding in ("recurrent_disc_herniation", "inadequate_decompression", "instability"):
        result = api.evaluate([surgery(0), imaging(1, "mri", ("adjacent_segment_disease", finding))], 2)
        assert flags(result)["surgical_target_on_imaging"] == ["u1"], finding
    for finding in ("adjacent_segment_disease", "nerve_entrapment_in_scar", "no_surgical_target"):
        result = api.evaluate([surgery(0), imaging(1, "mri", (finding,))], 2)
        assert "surgical_target_on_imaging" not in flags(result), finding
    old_episode = api.evaluate([imaging(0, "mri", ("instability",)), surgery(5)], 6)
    assert "surgical_target_on_imaging" not in flags(old_episode)


def test_nerve_entrapment_in_scar_only_when_refractory(api: Api) -> None:
    updates = [*refractory_history(), imaging(47, "mri", ("nerve_entrapment_in_scar",), indication="new pain")]
    assert "nerve_entrapment_in_scar" not in flags(api.evaluate(updates, 100))  # second line
    result = api.evaluate(updates, 101)  # refractory: CBT d45 + 56 days
    assert result["stage"] == "refractory" and flags(result)["nerve_entrapment_in_scar"] == ["u9"]
    urgent = api.evaluate([*updates, neuro(102, deficit=True)], 103)
    assert urgent["stage"] == "urgent_surgical_evaluation" and "nerve_entrapment_in_scar" in flags(urgent)


def test_facet_pain_suspected(api: Api) -> None:
    result = api.evaluate([surgery(0), pain(1, 7, facet=True), pain(2, 7, facet=False)], 3)
    assert flags(result)["facet_pain_suspected"] == ["u1"]  # any episode assessment
    assert "facet_pain_suspected" not in flags(api.evaluate([surgery(0), pain(1, 7)], 3))
    assert "facet_pain_suspected" not in flags(api.evaluate([pain(1, 7, facet=True), surgery(2)], 3))


def test_radicular_pain_needs_second_line_and_latest_distribution(api: Api) -> None:
    assert "radicular_pain" not in flags(api.evaluate(second_line_history(), 43))  # first line still
    for dist in ("radicular", "mixed"):
        result = api.evaluate(second_line_history(dist), 44)
        assert result["stage"] == "second_line" and flags(result)["radicular_pain"] == ["u6"], dist
    axial_latest = api.evaluate([*second_line_history(), pain(45, 8, "axial")], 46)
    assert "radicular_pain" not in flags(axial_latest)


def test_transforaminal_without_image_guidance(api: Api) -> None:
    base = [surgery(0), pain(1, 8, "radicular")]
    unguided = api.evaluate(
        [*base, proc(2, "epidural_steroid_injection", approach="transforaminal", image_guided=False)], 3
    )
    assert flags(unguided)["transforaminal_without_image_guidance"] == ["u2"]
    guided = api.evaluate(
        [*base, proc(2, "epidural_steroid_injection", approach="transforaminal", image_guided=True)], 3
    )
    assert "transforaminal_without_image_guidance" not in flags(guided)
    interlaminar = api.evaluate(
        [*base, proc(2, "epidural_steroid_injection", approach="interlaminar", image_guided=False)], 3
    )
    assert "transforaminal_without_image_guidance" not in flags(interlaminar)
    # §7.10: not documented as image-guided counts as missing guidance (safer)
    undocumented = api.evaluate([*base, proc(2, "epidural_steroid_injection", approach="transforaminal")], 3)
    assert "transforaminal_without_image_guidance" in flags(undocumented)


def test_passive_pt_only(api: Api) -> None:
    passive = [
        surgery(0),
        therapy(1, "physical_therapy", "started", "passive"),
        therapy(5, "physical_therapy", "progress", "passive"),
    ]
    assert flags(api.evaluate(passive, 6))["passive_pt_only"] == ["u1", "u2"]
    mixed = [*passive, therapy(7, "physical_therapy", "progress", "active")]
    assert "passive_pt_only" not in flags(api.evaluate(mixed, 8))
    default_active = [surgery(0), therapy(1, "physical_therapy", "started")]
    assert "passive_pt_only" not in flags(api.evaluate(default_active, 2))
    referral_only = [surgery(0), therapy(1, "physical_therapy", "referred")]
    assert "passive_pt_only" not in flags(api.evaluate(referral_only, 2))


def test_opioid_before_non_opioid_trial(api: Api) -> None:
    first = api.evaluate([surgery(0), med(1, "opioid_ir", mme=20), med(2, "nsaid")], 3)
    assert flags(first)["opioid_before_non_opioid_trial"] == ["u1"]
    after = api.evaluate([surgery(0), med(1, "gabapentinoid"), med(2, "opioid_ir", mme=20)], 3)
    assert "opioid_before_non_opioid_trial" not in flags(after)
    same_instant = api.evaluate([surgery(0), med(1, "snri"), med(1, "opioid_er", mme=20)], 3)
    assert "opioid_before_non_opioid_trial" in flags(same_instant)  # not "before" (§7.16)
    other_class = api.evaluate([surgery(0), med(1, "benzodiazepine"), med(1, "other"), med(2, "opioid_ir")], 3)
    assert "opioid_before_non_opioid_trial" in flags(other_class)
    for cls in ("nsaid", "gabapentinoid", "sodium_channel_anticonvulsant", "tca", "snri"):
        result = api.evaluate([med(1, cls), med(1, cls, "stopped", seconds=60), med(2, "opioid_ir")], 3)
        assert "opioid_before_non_opioid_trial" not in flags(result), cls


def test_opioid_monitoring_plan_missing(api: Api) -> None:
    start = [surgery(0), med(1, "nsaid"), med(40, "opioid_ir", mme=20)]  # u2 opens the opioid episode
    assert flags(api.evaluate(start, 41))["opioid_monitoring_plan_missing"] == ["u2"]
    lookback_edge = api.evaluate([*start, monitoring(10, plan=True)], 41)  # exactly start - 30 days
    assert "opioid_monitoring_plan_missing" not in flags(lookback_edge)
    too_early = api.evaluate([*start, monitoring(9.99, plan=True)], 41)
    assert "opioid_monitoring_plan_missing" in flags(too_early)
    not_a_plan = api.evaluate([*start, monitoring(40, plan=False, pdmp_checked=True)], 41)
    assert "opioid_monitoring_plan_missing" in flags(not_a_plan)
    stopped = api.evaluate([*start, med(45, "opioid_ir", "stopped")], 46)
    assert "opioid_monitoring_plan_missing" not in flags(stopped)  # not on opioids
    # a plan of a previous opioid episode does not count for a new one
    two = [*start, monitoring(40, plan=True), med(45, "opioid_ir", "stopped"), med(100, "opioid_ir")]
    assert flags(api.evaluate(two, 101))["opioid_monitoring_plan_missing"] == ["u5"]


def test_opioid_no_meaningful_relief_boundary_7_days(api: Api) -> None:
    # 7.2: from 7 days into the opioid episode (was 28)
    start = [surgery(0), med(1, "nsaid"), med(10, "opioid_ir", mme=20)]
    at_7 = api.evaluate([*start, review(17, False)], 18)
    assert flags(at_7)["opioid_no_meaningful_relief"] == ["u3"]
    just_before = api.evaluate([*start, review(17, False, seconds=-1)], 18)
    assert "opioid_no_meaningful_relief" not in flags(just_before)
    relief = api.evaluate([*start, review(17, True)], 18)
    assert "opioid_no_meaningful_relief" not in flags(relief)
    latest_counts = api.evaluate([*start, review(17, False), review(30, True)], 31)
    assert "opioid_no_meaningful_relief" not in flags(latest_counts)
    # "7 days into its opioid episode": a switch IR -> ER does not restart the episode
    switch = [*start, med(12, "opioid_er", mme=30), med(12, "opioid_ir", "stopped"), review(18, False)]
    assert flags(api.evaluate(switch, 19))["opioid_no_meaningful_relief"] == ["u5"]
    # only while on opioids (7.2)
    stopped = [*start, review(17, False), med(18, "opioid_ir", "stopped")]
    assert "opioid_no_meaningful_relief" not in flags(api.evaluate(stopped, 19))


def test_opioid_tolerance_risk_exactly_28_days(api: Api) -> None:
    start = [surgery(0), med(1, "nsaid"), med(10, "opioid_ir", mme=20)]
    assert "opioid_tolerance_risk" not in flags(api.evaluate(start, 38, now_seconds=-1))
    result = api.evaluate(start, 38)
    assert flags(result)["opioid_tolerance_risk"] == ["u2"]
    early = api.evaluate(start, 20)
    assert early["next_evaluation_at"].startswith(ts(38)[:19])  # 28 days on opioids pass
    # continuous across a same-instant stop and restart; broken by a real gap
    continued = [*start, med(20, "opioid_ir", "stopped"), med(20, "opioid_ir")]
    assert "opioid_tolerance_risk" in flags(api.evaluate(continued, 38))
    gap = [*start, med(20, "opioid_ir", "stopped"), med(21, "opioid_ir")]
    assert "opioid_tolerance_risk" not in flags(api.evaluate(gap, 38))
    assert "opioid_tolerance_risk" in flags(api.evaluate(gap, 49))
    # overlapping classes keep the patient on opioids
    overlap = [*start, med(15, "opioid_er", mme=10), med(20, "opioid_ir", "stopped")]
    assert "opioid_tolerance_risk" in flags(api.evaluate(overlap, 38))


def test_naloxone_indicated_mme_threshold(api: Api) -> None:
    def run(*mmes: float, extra: tuple[dict[str, Any], ...] = ()) -> dict[str, list[str]]:
        meds = [med(1, "nsaid")] + [
            med(10, cls, mme=m) for cls, m in zip(("opioid_ir", "opioid_er"), mmes, strict=False)
        ]
        return flags(api.evaluate([surgery(0), *meds, *extra], 11))

    assert "naloxone_indicated" in run(50)
    assert "naloxone_indicated" not in run(49.9)
    assert "naloxone_indicated" in run(30, 20)  # summed over open courses
    assert "naloxone_indicated" not in run(50, extra=(monitoring(9, naloxone_offered=True),))
    assert "naloxone_indicated" in run(50, extra=(monitoring(9, naloxone_offered=False),))
    assert "naloxone_indicated" in run(50, extra=(monitoring(-21, naloxone_offered=True),))  # > 30 days before
    assert "naloxone_indicated" not in run(50, extra=(monitoring(-20, naloxone_offered=True),))  # exactly 30
    # latest mme of the course counts: a decrease below 50
    decreased = run(60, extra=(med(10.5, "opioid_ir", "dose_decreased", mme=40),))
    assert "naloxone_indicated" not in decreased
    increased = run(40, extra=(med(10.5, "opioid_ir", "dose_increased", mme=50),))
    assert increased["naloxone_indicated"] == ["u2", "u3"]  # the start and the dose that reached 50


def test_opioid_benzodiazepine_coprescription(api: Api) -> None:
    both = [surgery(0), med(1, "nsaid"), med(2, "opioid_ir", mme=10), med(3, "benzodiazepine")]
    assert flags(api.evaluate(both, 4))["opioid_benzodiazepine_coprescription"] == ["u2", "u3"]
    benzo_stopped = [*both, med(5, "benzodiazepine", "stopped")]
    assert "opioid_benzodiazepine_coprescription" not in flags(api.evaluate(benzo_stopped, 6))
    opioid_stopped = [*both, med(5, "opioid_ir", "stopped")]
    assert "opioid_benzodiazepine_coprescription" not in flags(api.evaluate(opioid_stopped, 6))


def test_psychological_therapy_recommended(api: Api) -> None:
    assert "psychological_therapy_recommended" not in flags(api.evaluate(second_line_history(), 43))
    assert flags(api.evaluate(second_line_history(), 44))["psychological_therapy_recommended"] == []
    for kind in ("cbt", "biofeedback", "relaxation_training", "supportive_psychotherapy"):
        result = api.evaluate([*second_line_history(), therapy(45, kind)], 46)
        assert "psychological_therapy_recommended" not in flags(result), kind
    for kind, status in (
        ("cbt", "referred"),
        ("psychological_evaluation", "started"),
        ("multidisciplinary_rehab", "started"),
    ):
        result = api.evaluate([*second_line_history(), therapy(45, kind, status)], 46)
        assert "psychological_therapy_recommended" in flags(result), (kind, status)


def test_multidisciplinary_rehab_recommended(api: Api) -> None:
    assert "multidisciplinary_rehab_recommended" not in flags(api.evaluate(refractory_history(), 100))
    assert "multidisciplinary_rehab_recommended" in flags(api.evaluate(refractory_history(), 101))
    referred = [*refractory_history(), therapy(102, "multidisciplinary_rehab", "referred")]
    assert "multidisciplinary_rehab_recommended" in flags(api.evaluate(referred, 103))
    started = [*refractory_history(), therapy(102, "multidisciplinary_rehab", "started")]
    assert "multidisciplinary_rehab_recommended" not in flags(api.evaluate(started, 103))


def test_scs_psychological_evaluation_needed(api: Api) -> None:
    trial = proc(30, "scs_trial", relief_percent=60)
    assert flags(api.evaluate([surgery(0), trial], 31))["scs_psychological_evaluation_needed"] == ["u1"]
    for kind, status in (
        ("psychological_evaluation", "completed"),
        ("psychological_evaluation", "started"),
        ("cbt", "started"),
        ("relaxation_training", "completed"),
    ):
        result = api.evaluate([surgery(0), therapy(20, kind, status), trial], 31)
        assert "scs_psychological_evaluation_needed" not in flags(result), (kind, status)
    for kind, status, day in (
        ("psychological_evaluation", "referred", 20),
        ("psychological_evaluation", "completed", 30),
        ("psychological_evaluation", "completed", 30.5),
        ("physical_therapy", "started", 20),
    ):
        result = api.evaluate([surgery(0), therapy(day, kind, status), trial], 31)
        assert "scs_psychological_evaluation_needed" in flags(result), (kind, status, day)


def test_scs_trial_positive_negative_boundary(api: Api) -> None:
    def outcome(*reliefs: float | None) -> set[str]:
        trials = [
            proc(50 + i, "scs_trial", **({} if r is None else {"relief_percent": r})) for i, r in enumerate(reliefs)
        ]
        # second line from day 44, radicular pain, psychological evaluation before the trials (7.7)
        prepared = [*second_line_history(), therapy(45, "psychological_evaluation", "completed")]
        found = set(flags(api.evaluate([*prepared, *trials], 100)))
        return found & {"scs_trial_positive", "scs_trial_negative", "scs_implant_criteria_unmet"}

    assert outcome(50) == {"scs_trial_positive"}
    assert outcome(49) == {"scs_trial_negative"}
    assert outcome(49.9) == {"scs_trial_negative"}
    assert outcome(80, 30) == {"scs_trial_negative"}  # the latest trial decides
    assert outcome(30, 80) == {"scs_trial_positive"}
    assert outcome(None) == set()
    result = api.evaluate(
        [surgery(0), proc(10, "scs_trial", relief_percent=20), proc(11, "scs_trial", relief_percent=75)], 12
    )
    assert flags(result)["scs_implant_criteria_unmet"] == ["u2"]  # no criterion held


def test_scs_positive_percent_override(api: Api) -> None:
    api.configure("asra-2020", {"scs_positive_percent": 60})
    result = api.evaluate([surgery(0), proc(10, "scs_trial", relief_percent=55)], 11)
    assert "scs_trial_negative" in flags(result)


def test_tens_caution_any_tens_record(api: Api) -> None:
    for status in ("referred", "started", "completed"):
        result = api.evaluate([surgery(0), therapy(3, "tens", status)], 4)
        assert flags(result)["tens_caution"] == ["u1"], status
        rec = recs(result)["tens_caution"]
        assert "G3" in rec["citation"] and "NICE NG59" in rec["citation"]
    assert "tens_caution" not in flags(api.evaluate([surgery(0)], 4))


def test_tens_same_under_both_profiles(api: Api) -> None:
    api.configure("us-medicare-lcd")
    assert "tens_caution" in flags(api.evaluate([surgery(0), therapy(3, "tens")], 4))


def test_imaging_without_indication(api: Api) -> None:
    base = [surgery(0), imaging(1), neuro(2), pain(3, 8)]  # complete at day 3 (the pain assessment)
    assert "imaging_without_indication" not in flags(api.evaluate(base, 4))  # the completing MRI itself
    later = api.evaluate([*base, imaging(10, "xray")], 11)
    assert flags(later)["imaging_without_indication"] == ["u4"]
    indicated = api.evaluate([*base, imaging(10, "mri", indication="new weakness")], 11)
    assert "imaging_without_indication" not in flags(indicated)
    before_complete = api.evaluate([surgery(0), imaging(1, "xray"), imaging(2), neuro(2), pain(3, 8)], 4)
    assert "imaging_without_indication" not in flags(before_complete)
    completing = api.evaluate([surgery(0), neuro(1), pain(1, 8), imaging(5), imaging(5, "ct")], 6)
    assert "imaging_without_indication" not in flags(completing)  # same instant is not "after"


def test_er_opioid_before_first_line_failed(api: Api) -> None:
    early = api.evaluate([*second_line_history(), med(20, "opioid_er", mme=20)], 50)
    assert flags(early)["er_opioid_before_first_line_failed"] == ["u7"]
    initial = api.evaluate([surgery(0), med(0.5, "opioid_er", mme=20)], 2)
    assert "er_opioid_before_first_line_failed" in flags(initial)
    late = api.evaluate([*second_line_history(), med(44, "opioid_er", mme=20)], 50)  # at the 2nd-line entry
    assert "er_opioid_before_first_line_failed" not in flags(late)
    ir = api.evaluate([*second_line_history(), med(20, "opioid_ir", mme=20)], 50)
    assert "er_opioid_before_first_line_failed" not in flags(ir)


def test_esi_without_radicular_pain(api: Api) -> None:
    esi = proc(10, "epidural_steroid_injection", approach="interlaminar", image_guided=True)
    axial = api.evaluate([surgery(0), pain(5, 8, "axial"), esi], 11)
    assert flags(axial)["esi_without_radicular_pain"] == ["u2"]
    for dist in ("radicular", "mixed"):
        assert "esi_without_radicular_pain" not in flags(api.evaluate([surgery(0), pain(5, 8, dist), esi], 11))
    latest_before = api.evaluate([surgery(0), pain(5, 8, "radicular"), pain(8, 8, "axial"), esi], 11)
    assert "esi_without_radicular_pain" in flags(latest_before)
    after_only = api.evaluate([surgery(0), pain(5, 8, "radicular"), esi, pain(12, 8, "axial")], 13)
    assert "esi_without_radicular_pain" not in flags(after_only)
    no_assessment = api.evaluate([surgery(0), esi], 11)
    assert "esi_without_radicular_pain" not in flags(no_assessment)


def test_scs_before_other_therapies(api: Api) -> None:
    early = api.evaluate([*second_line_history(), proc(40, "scs_trial", relief_percent=60)], 50)
    assert flags(early)["scs_before_other_therapies"] == ["u7"]
    late = api.evaluate([*second_line_history(), proc(44, "scs_trial", relief_percent=60)], 50)
    assert "scs_before_other_therapies" not in flags(late)


def test_repeat_surgery_criteria_unmet(api: Api) -> None:
    target = imaging(20, "mri", ("recurrent_disc_herniation",), indication="worse pain")
    early = api.evaluate([*second_line_history(), target, proc(30, "repeat_surgery")], 50)
    assert flags(early)["repeat_surgery_criteria_unmet"] == ["u8"]  # below second line
    no_target = api.evaluate([*second_line_history(), proc(50, "repeat_surgery")], 51)
    assert flags(no_target)["repeat_surgery_criteria_unmet"] == ["u7"]
    met = api.evaluate([*second_line_history(), target, proc(50, "repeat_surgery")], 51)
    assert "repeat_surgery_criteria_unmet" not in flags(met)
    target_same_instant = api.evaluate(
        [*second_line_history(), imaging(50, "mri", ("instability",), indication="x"), proc(50, "repeat_surgery")], 51
    )
    assert "repeat_surgery_criteria_unmet" in flags(target_same_instant)  # "before it" is strict
    urgent = api.evaluate([surgery(0), neuro(5, deficit=True), proc(6, "repeat_surgery")], 7)
    assert "repeat_surgery_criteria_unmet" not in flags(urgent)
    cleared_then = api.evaluate([surgery(0), neuro(5, deficit=True), neuro(6), proc(7, "repeat_surgery")], 8)
    assert "repeat_surgery_criteria_unmet" in flags(cleared_then)


def test_responding_to_treatment(api: Api) -> None:
    # the baseline is the first score from 28 days after surgery (7.1): u4 at day 28
    base = [surgery(0), *evaluation_complete(1, nrs=10), pain(28, 10)]
    relief = api.evaluate([*base, pain(30, 7)], 31)  # 10 -> 7 is exactly 30 %
    assert flags(relief)["responding_to_treatment"] == ["u4", "u5"]
    assert "responding_to_treatment" not in flags(api.evaluate([*base, pain(30, 8)], 31))
    stated = api.evaluate([*base, therapy(30, "physical_therapy", "progress", relief=True)], 31)
    assert "u5" in flags(stated)["responding_to_treatment"]
    # the stage does not move back: second line + relief adds the flag
    improved = api.evaluate([*second_line_history(), pain(50, 5, "radicular")], 51)
    assert improved["stage"] == "second_line" and "responding_to_treatment" in flags(improved)


def test_prognostic_factors_symptom_months_boundary(api: Api) -> None:
    def run(*updates: dict[str, Any]) -> set[str]:
        found = set(flags(api.evaluate([surgery(0), *updates], 5)))
        return found & {"poor_prognostic_factors", "good_prognostic_factors"}

    assert run(psychosocial(1, [], months=11.9)) == {"good_prognostic_factors"}
    assert run(psychosocial(1, [], months=12)) == set()
    assert run(psychosocial(1, ["unemployed"], months=24)) == {"poor_prognostic_factors"}
    for good in ("high_motivation", "family_support", "good_function", "moderate_psychological_factors"):
        assert run(psychosocial(1, [good])) == {"good_prognostic_factors"}, good
    for poor in ("divorced", "unemployed", "diffuse_complaints", "predominant_psychological_factors", "secondary_gain"):
        assert run(psychosocial(1, [poor])) == {"poor_prognostic_factors"}, poor
    assert run(psychosocial(1, ["divorced"]), psychosocial(2, ["family_support"])) == {"good_prognostic_factors"}
    result = api.evaluate([surgery(0), psychosocial(1, ["secondary_gain"]), psychosocial(2, ["good_function"])], 5)
    assert flags(result)["good_prognostic_factors"] == ["u2"]


def test_symptom_months_override(api: Api) -> None:
    api.configure("asra-2020", {"symptom_months_good": 6})
    result = api.evaluate([surgery(0), psychosocial(1, [], months=7)], 5)
    assert "good_prognostic_factors" not in flags(result)


# ---------------------------------------------------------------- §5 policy profiles: medial branch blocks


def _mbb(*blocks: tuple[float, float | None]) -> list[dict[str, Any]]:
    return [
        surgery(0),
        *[proc(day, "medial_branch_block", **({} if r is None else {"relief_percent": r})) for day, r in blocks],
    ]


@pytest.mark.parametrize(("relief", "positive"), [(49, False), (49.9, False), (50, True), (80, True), (100, True)])
def test_mbb_asra_one_block_at_least_50(api: Api, relief: float, positive: bool) -> None:
    result = api.evaluate(_mbb((5, relief)), 6)
    assert ("mbb_positive" in flags(result)) is positive
    if positive:
        assert flags(result)["mbb_positive"] == ["u1"]
        assert "asra-2020" in recs(result)["mbb_positive"]["text"]


def test_mbb_without_relief_never_positive(api: Api) -> None:
    assert "mbb_positive" not in flags(api.evaluate(_mbb((5, None)), 6))


@pytest.mark.parametrize(
    ("blocks", "positive"),
    [
        (((5, 80), (19, 80)), True),  # exactly 14 days apart, each exactly 80 %
        (((5, 80), (18, 80)), False),  # 13 days apart
        (((5, 80), (18.99, 80)), False),  # just under 14 days
        (((5, 79.9), (19, 90)), False),  # one below 80 %
        (((5, 100),), False),  # a single block is not enough
        (((5, 90), (10, 50), (19, 85)), True),  # any two qualifying blocks >= 14 days apart
        (((5, 90), (12, 95), (20, 30)), False),
        (((5, 50), (30, 60)), False),  # positive under asra, not under the LCD
    ],
)
def test_mbb_medicare_two_blocks(api: Api, blocks: tuple[tuple[float, float], ...], positive: bool) -> None:
    api.configure("us-medicare-lcd")
    result = api.evaluate(_mbb(*blocks), 40)
    assert result["profile"] == "us-medicare-lcd"
    assert ("mbb_positive" in flags(result)) is positive
    if positive:
        assert "us-medicare-lcd" in recs(result)["mbb_positive"]["text"]
        assert recs(result)["mbb_positive"]["citation"] == "G3"


def test_mbb_medicare_exact_14_days_across_offsets(api: Api) -> None:
    api.configure("us-medicare-lcd")
    first = {
        "type": "procedure",
        "occurred_at": "2026-03-01T09:00:00-05:00",
        "data": {"kind": "medial_branch_block", "relief_percent": 85},
    }
    # 14 x 24 h later written in +01:00 (crosses the US clock change): 2026-03-15T14:00:00Z
    second = {
        "type": "procedure",
        "occurred_at": "2026-03-15T15:00:00+01:00",
        "data": {"kind": "medial_branch_block", "relief_percent": 85},
    }
    body = {"updates": [first, second], "now": "2026-04-01T00:00:00Z"}
    result = api.client.post("/v1/pathway:evaluate", json=body, headers=api.headers).json()
    assert "mbb_positive" in flags(result)
    second_early = {**second, "occurred_at": "2026-03-15T14:59:59+01:00"}
    body = {"updates": [first, second_early], "now": "2026-04-01T00:00:00Z"}
    result = api.client.post("/v1/pathway:evaluate", json=body, headers=api.headers).json()
    assert "mbb_positive" not in flags(result)


def test_profile_and_overrides_change_digest(api: Api) -> None:
    history = _mbb((5, 60), (25, 60))
    asra = api.evaluate(history, 30)
    assert asra["profile"] == "asra-2020" and "mbb_positive" in flags(asra)
    api.configure("us-medicare-lcd")
    lcd = api.evaluate(history, 30)
    assert lcd["profile"] == "us-medicare-lcd" and "mbb_positive" not in flags(lcd)
    assert lcd["params_digest"] != asra["params_digest"]
    api.configure("us-medicare-lcd", {"mbb_relief_percent": 60})  # an override on top of the profile
    overridden = api.evaluate(history, 30)
    assert overridden["profile"] == "us-medicare-lcd" and "mbb_positive" in flags(overridden)
    assert overridden["params_digest"] not in (lcd["params_digest"], asra["params_digest"])
    api.configure("us-medicare-lcd", {"mbb_relief_percent": 60, "mbb_min_days_apart": 21})
    assert "mbb_positive" not in flags(api.evaluate(history, 30))
    api.configure("asra-2020", {"mbb_blocks_required": 2})
    assert "mbb_positive" in flags(api.evaluate(history, 30))
    assert "mbb_positive" not in flags(api.evaluate(_mbb((5, 60)), 30))
    api.configure("asra-2020")
    assert api.evaluate(history, 30)["params_digest"] == asra["params_digest"]


def test_bad_profile_or_parameter_is_refused(api: Api) -> None:
    ops = {"Authorization": f"Bearer {create_token(api.settings, api.org, 'ops')}"}
    for body in (
        {"profile": "nice-2016"},
        {"profile": "asra-2020", "overrides": {"mbb_relief_percent": 101}},
        {"profile": "asra-2020", "overrides": {"no_such_parameter": 1}},
    ):
        response = api.client.put("/v1/organisation/pathway-config", json=body, headers=ops)
        assert response.status_code == 422, body
    assert api.evaluate([], 0)["profile"] == "asra-2020"


# ---------------------------------------------------------------- "these, and no others"


def test_no_flag_outside_the_spec_list(api: Api) -> None:
    histories = [_kitchen_sink(), refractory_history(), second_line_history(), [], [neuro(0, deficit=True)]]
    for history in histories:
        for day in (0, 30, 60, 120, 400):
            result = api.evaluate(history, day)
            assert set(flags(result)) <= ALL_FLAGS
            assert len(result["flags"]) == len(set(flags(result)))  # each code once


def test_determinism_arrival_order_does_not_matter(api: Api) -> None:
    history = _kitchen_sink()
    forward = api.evaluate(history, 200)
    # reversed order changes positional ids; compare codes, stage and deadlines by content
    backward = api.evaluate(list(reversed(history)), 200)
    n = len(history)
    rename = {f"u{i}": f"u{n - 1 - i}" for i in range(n)}
    assert forward["stage"] == backward["stage"] and forward["stage_since"] == backward["stage_since"]
    assert flags(forward) == {code: sorted(rename[i] for i in ids) for code, ids in flags(backward).items()}
    assert forward["params_digest"] == backward["params_digest"]


# ---------------------------------------------------------------- same-instant and cross-episode edges


def test_strict_before_and_same_instant_edges(api: Api) -> None:
    esi = proc(10, "epidural_steroid_injection", approach="interlaminar", image_guided=True)
    same = api.evaluate([surgery(0), pain(10, 8, "axial"), esi], 11)
    assert "esi_without_radicular_pain" not in flags(same)  # the assessment is not "before" the injection
    urgent_same = api.evaluate([surgery(0), neuro(6, deficit=True), proc(6, "repeat_surgery")], 7)
    assert "repeat_surgery_criteria_unmet" not in flags(urgent_same)
    split_mme = [surgery(0), med(1, "nsaid"), med(2, "opioid_ir", mme=25), med(2, "opioid_er", mme=25)]
    assert "naloxone_indicated" in flags(api.evaluate(split_mme, 3))
    no_mme = [surgery(0), med(1, "nsaid"), med(2, "opioid_ir")]
    assert "naloxone_indicated" not in flags(api.evaluate(no_mme, 3))  # MME unknown (§7.14)


def test_flags_of_all_facts_carry_across_episodes(api: Api) -> None:
    """§0: everything but stage criteria, baseline, relief and stage-dependent flags uses all facts."""
    old = [
        surgery(0),
        med(1, "opioid_ir", mme=60),
        proc(5, "medial_branch_block", relief_percent=70),
        proc(6, "epidural_steroid_injection", approach="transforaminal", image_guided=False),
        therapy(7, "tens"),
        therapy(8, "physical_therapy", "started", "passive"),
        psychosocial(9, ["unemployed"]),
        proc(10, "scs_trial", relief_percent=20),
    ]
    result = api.evaluate([*old, surgery(40, "fusion")], 45)
    expected = {
        "opioid_before_non_opioid_trial",
        "opioid_monitoring_plan_missing",
        "opioid_tolerance_risk",
        "naloxone_indicated",
        "mbb_positive",
        "transforaminal_without_image_guidance",
        "tens_caution",
        "passive_pt_only",
        "poor_prognostic_factors",
        "scs_trial_negative",
        "scs_psychological_evaluation_needed",
    }
    assert expected <= set(flags(result)), expected - set(flags(result))
    assert "surgical_history_missing" not in flags(result)
    # stage-dependent / episode flags restart with the new episode
    assert {"imaging_needed", "neuro_exam_needed", "pain_assessment_needed"} <= set(flags(result))


def test_opioid_review_of_an_earlier_opioid_episode(api: Api) -> None:
    history = [
        surgery(0),
        med(1, "nsaid"),
        med(2, "opioid_ir", mme=10),
        review(30, False),
        med(31, "opioid_ir", "stopped"),
        med(60, "opioid_ir", mme=10),
    ]
    # 2026.2: "the latest opioid_review of the current opioid episode": a review of an earlier one does not count
    assert "opioid_no_meaningful_relief" not in flags(api.evaluate(history, 61))
    assert flags(api.evaluate([*history, review(67, False)], 68))["opioid_no_meaningful_relief"] == ["u6"]
    off_opioids = [surgery(0), med(1, "nsaid"), review(30, False)]
    assert "opioid_no_meaningful_relief" not in flags(api.evaluate(off_opioids, 31))  # §7.15


def test_naloxone_fact_ids_name_the_doses_behind_the_mme(api: Api) -> None:
    history = [
        surgery(0),
        med(1, "nsaid"),
        med(2, "opioid_ir", mme=30),
        med(3, "opioid_er", mme=10),
        med(4, "opioid_er", "dose_increased", mme=25),
        med(5, "opioid_er", mme=90),
    ]  # u5: no effect
    result = api.evaluate(history, 6)
    assert flags(result)["naloxone_indicated"] == ["u2", "u3", "u4"]  # 30 + 25 = 55


def test_exact_flag_sets_of_canonical_histories(api: Api) -> None:
    """'These, and no others': a clean history raises exactly the flags its state calls for."""
    # radicular pain in first line and no neuropathic agent tried (7.9)
    assert flags(api.evaluate([surgery(0), *evaluation_complete(1)], 5)) == {"neuropathic_agent_not_tried": ["u3"]}
    assert flags(api.evaluate([surgery(0), *evaluation_complete(1, "axial")], 5)) == {}
    assert flags(api.evaluate(second_line_history(), 50)) == {
        "psychological_therapy_recommended": [],
        "radicular_pain": ["u6"],
        "neuropathic_agent_not_tried": ["u6"],
    }
    refractory = api.evaluate(refractory_history(), 110)
    assert refractory["stage"] == "refractory"
    assert set(flags(refractory)) == {
        "radicular_pain",
        "multidisciplinary_rehab_recommended",
        "neuropathic_agent_not_tried",
    }
    assert set(flags(api.evaluate([surgery(0)], 1))) == {
        "imaging_needed",
        "neuro_exam_needed",
        "pain_assessment_needed",
    }
