"""Guideline metadata on every rule, and the tables cover every row of the spec."""

from __future__ import annotations

import re

import test_pathway_deadlines as test_deadline_table
import test_pathway_flags as test_flag_table
import test_pathway_profiles as test_profiles_params

from services.pathway.rules.catalog import FLAG_RULES, STAGE_ORDER, URGENT
from services.pathway.rules.catalog_deadlines import DEADLINE_RULES, STAGE_RULES

KNOWN_SOURCES = {"G1", "G2", "G3", "G4", "G5", "G6", "CDC22", "IMMPACT", "NICE NG59", "NICE TA159", "CMS LCD"}
SPEC_FLAGS = {
    "surgical_history_missing", "red_flag_neuro", "imaging_needed", "neuro_exam_needed", "pain_assessment_needed",
    "surgical_target_on_imaging", "nerve_entrapment_in_scar", "facet_pain_suspected", "mbb_positive",
    "radicular_pain", "transforaminal_without_image_guidance", "passive_pt_only", "opioid_before_non_opioid_trial",
    "opioid_monitoring_plan_missing", "opioid_no_meaningful_relief", "opioid_tolerance_risk", "naloxone_indicated",
    "opioid_benzodiazepine_coprescription", "psychological_therapy_recommended",
    "multidisciplinary_rehab_recommended", "scs_psychological_evaluation_needed", "scs_trial_positive",
    "scs_trial_negative", "tens_caution", "imaging_without_indication", "er_opioid_before_first_line_failed",
    "esi_without_radicular_pain", "scs_before_other_therapies", "repeat_surgery_criteria_unmet",
    "responding_to_treatment", "poor_prognostic_factors", "good_prognostic_factors",
    # new in 2026.2
    "surgical_evaluation_pending", "rfa_without_positive_blocks", "neuropathic_agent_not_tried",
    "active_pt_not_started", "non_opioid_not_started", "pt_not_started", "pain_worsening",
    "opioid_tolerance_or_hyperalgesia_reported", "opioid_mme_unknown", "scs_implant_criteria_unmet",
}  # fmt: skip
SPEC_DEADLINES = {
    "urgent_surgical_referral", "initial_evaluation_overdue", "opioid_monitoring_plan", "opioid_review_4w",
    "opioid_review_dose_change", "opioid_review_periodic", "pdmp_review", "urine_drug_test", "pt_start_check",
    "pt_follow_up", "first_line_review", "procedure_follow_up",
    "opioid_taper_follow_up", "opioid_stop_follow_up",  # new in 2026.2
}  # fmt: skip
# The spec's citation per flag row (§4) and per deadline (§3, where the table names one).
SPEC_CITATIONS = {
    "rfa_without_positive_blocks": "G3; CMS LCD", "opioid_no_meaningful_relief": "G3; CDC22",
    "opioid_mme_unknown": "CDC22", "naloxone_indicated": "CDC22", "scs_trial_positive": "G3; NICE TA159; CMS LCD",
    "scs_implant_criteria_unmet": "G3; NICE TA159; CMS LCD", "scs_trial_negative": "NICE TA159",
    "tens_caution": "G3; NICE NG59", "multidisciplinary_rehab_recommended": "G6", "pain_worsening": "G1",
    "active_pt_not_started": "G1", "non_opioid_not_started": "G3", "pt_not_started": "G1",
    "neuropathic_agent_not_tried": "G3", "surgical_evaluation_pending": "G1",
    "opioid_tolerance_or_hyperalgesia_reported": "G3", "imaging_needed": "G1; G2",
}  # fmt: skip
SPEC_DEADLINE_CITATIONS = {
    "opioid_review_4w": "G3", "opioid_review_dose_change": "CDC22", "opioid_review_periodic": "CDC22",
    "opioid_taper_follow_up": "CDC22", "opioid_stop_follow_up": "G3; CDC22", "pdmp_review": "CDC22",
    "urine_drug_test": "CDC22",
}  # fmt: skip


def test_every_rule_carries_citation_rationale_and_text():
    for rules in (STAGE_RULES, FLAG_RULES, DEADLINE_RULES):
        for rule in rules.values():
            assert rule.rationale and rule.text and "\n" not in rule.text
            assert set(re.split(r"; ", rule.citation)) <= KNOWN_SOURCES, rule


def test_citations_are_the_spec_rows():
    assert {code: FLAG_RULES[code].citation for code in SPEC_CITATIONS} == SPEC_CITATIONS
    assert {kind: DEADLINE_RULES[kind].citation for kind in SPEC_DEADLINE_CITATIONS} == SPEC_DEADLINE_CITATIONS


def test_no_text_spells_a_guideline_code_without_its_source():
    for rule in (*FLAG_RULES.values(), *DEADLINE_RULES.values()):
        assert not re.search(r"\bG[1-6]\b", rule.text), rule.code


def test_catalog_matches_the_spec_exactly():
    assert set(FLAG_RULES) == SPEC_FLAGS
    assert set(DEADLINE_RULES) == SPEC_DEADLINES
    assert set(STAGE_RULES) == {*STAGE_ORDER, URGENT}


def test_flag_tables_cover_every_flag_shown_and_not_shown():
    rows = [(code, shown) for *_, code, shown in test_flag_table.CASES]
    rows += [("mbb_positive", positive) for *_, positive in test_profiles_params.CASES]  # §5 table
    assert {code for code, shown in rows if shown} == SPEC_FLAGS
    assert {code for code, shown in rows if not shown} == SPEC_FLAGS


def test_deadline_table_covers_every_kind_and_status():
    statuses = {(kind, status) for *_, kind, _, status in test_deadline_table.CASES}
    assert {kind for kind, _ in statuses} == SPEC_DEADLINES
    assert {kind for kind, status in statuses if status == "satisfied"} == SPEC_DEADLINES
    never_cancelled = {"urgent_surgical_referral", "procedure_follow_up"}
    assert {kind for kind, status in statuses if status == "cancelled"} == SPEC_DEADLINES - never_cancelled
