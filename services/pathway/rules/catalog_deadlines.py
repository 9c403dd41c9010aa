"""Stage and deadline metadata: citation, rationale and the one-line text the reminder shows."""

from __future__ import annotations

from .catalog import URGENT, rules

# fmt: off
STAGE_RULES = rules(
    (URGENT, "G1", "Progressive neurological deficit or cauda equina signs need prompt surgical evaluation.",
     "Latest neuro exam shows a red flag and no surgical evaluation is recorded since."),
    ("initial_evaluation", "G1; G2", "MRI/CT, neuro exam and facet evaluation come before treatment.",
     "Until MRI/CT, neuro exam and pain/facet assessment are all recorded in the episode."),
    ("first_line", "G1; G3", "Active physical therapy and non-opioid medication are tried first.",
     "Initial evaluation complete."),
    ("second_line", "G3; IMMPACT", "An adequate first-line trial without meaningful relief escalates care.",
     "Active PT >= 6 weeks, non-opioid course, assessment >= 4 weeks into PT failing the 30 % test."),
    ("refractory", "G5; G6; G1",
     "Pain persisting through psychological and interventional care is refractory.",
     "Second line, psychological therapy >= 8 weeks, an interventional procedure, no meaningful relief."),
)

DEADLINE_RULES = rules(
    ("urgent_surgical_referral", "G1", "Red-flag neuro findings need prompt surgical evaluation.",
     "Urgent surgical referral due: progressive deficit or cauda equina signs on neuro exam; record the spine "
     "surgeon's evaluation"),
    ("initial_evaluation_overdue", "G1; G2", "Evaluation (MRI/CT, neuro exam, facet) should be complete.",
     "Initial evaluation overdue: obtain MRI/CT, neuro exam and pain/facet assessment"),
    ("opioid_monitoring_plan", "G3", "A monitoring strategy precedes long-term opioid therapy.",
     "Opioid monitoring plan due: document side-effect, adverse-effect and compliance monitoring"),
    ("opioid_review_4w", "G3", "No meaningful relief within 1 month predicts no long-term benefit.",
     "4-week opioid reassessment due: review benefit, harms and whether to continue"),
    ("opioid_review_dose_change", "CDC22", "Reassess within 1-4 weeks of a dose increase.",
     "Opioid reassessment after dose increase due: review benefit and harms of the new dose"),
    ("opioid_review_periodic", "CDC22", "Reassess benefits and harms at least every 3 months.",
     "3-monthly opioid review due: review benefit, harms and whether to continue"),
    ("opioid_taper_follow_up", "CDC22", "Follow up at least monthly while tapering.",
     "Opioid taper follow-up due: the last review showed no meaningful relief; review the taper, "
     "withdrawal and pain"),
    ("opioid_stop_follow_up", "G3; CDC22", "Withdrawal effects can follow the end of a long opioid course.",
     "Follow-up after stopping opioids due: check for withdrawal effects and record pain"),
    ("pdmp_review", "CDC22", "Check the PDMP before starting and at least every 3 months.",
     "PDMP check due: review the prescription drug monitoring program"),
    ("urine_drug_test", "CDC22", "Urine drug testing before starting and at least annually.",
     "Urine drug test due: before starting opioids and at least annually"),
    ("pt_start_check", "G1; G3", "Referred physical therapy should actually start.",
     "PT start check due: confirm the patient has started physical therapy"),
    ("pt_follow_up", "G1; G3", "Physical therapy progress should be followed up.",
     "PT follow-up due: record physical therapy progress or completion"),
    ("first_line_review", "G3; IMMPACT", "An adequate first-line trial needs an outcome assessment.",
     "First-line review due: record a pain assessment to judge the 6-week first-line trial"),
    ("procedure_follow_up", "G3; IMMPACT", "Procedure benefit is judged by a later pain assessment.",
     "Procedure follow-up due: record a pain assessment (or the block/trial result) to judge the procedure's "
     "effect"),
)
# fmt: on
