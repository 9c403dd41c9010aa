"""Guideline metadata on every rule, and the tables cover every row of the spec."""

from __future__ import annotations

import re

import test_pathway_deadlines as test_deadline_table
import test_pathway_flags as test_flag_table
import test_pathway_profiles as test_profiles_params

from services.pathway.rules.catalog import DEADLINE_RULES, FLAG_RULES, STAGE_ORDER, STAGE_RULES, URGENT

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
}  # fmt: skip
SPEC_DEADLINES = {
    "urgent_surgical_referral", "initial_evaluation_overdue", "opioid_monitoring_plan", "opioid_review_4w",
    "opioid_review_dose_change", "opioid_review_periodic", "pdmp_review", "urine_drug_test", "pt_start_check",
    "pt_follow_up", "first_line_review", "procedure_follow_up",
}  # fmt: skip


def test_every_rule_carries_citation_rationale_and_text():
    for rules in (STAGE_RULES, FLAG_RULES, DEADLINE_RULES):
        for rule in rules.values():
            assert rule.rationale and rule.text and "\n" not in rule.text
            assert set(re.split(r"; ", rule.citation)) <= KNOWN_SOURCES, rule


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
