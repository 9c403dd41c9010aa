"""Guideline metadata of every rule: citation, one-line rationale and the coordinator's text.

Sources: G1-G6 are the reference numbers of the guideline article (docs/guideline-source.txt); CDC22 is
the CDC Clinical Practice Guideline for Prescribing Opioids for Pain (2022); IMMPACT the consensus on
meaningful change in chronic pain trials; NICE NG59 / TA159 and the CMS LCD as named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RULE_SET_VERSION = "lbp-postlam-2026.1"

STAGE_ORDER = ("initial_evaluation", "first_line", "second_line", "refractory")
URGENT = "urgent_surgical_evaluation"


@dataclass(frozen=True)
class RuleInfo:
    code: str
    citation: str
    rationale: str
    text: str  # recommendation (flags) or one-line coordinator text (deadlines)


def _rules(*items: tuple[str, str, str, str]) -> Mapping[str, RuleInfo]:
    return {code: RuleInfo(code, citation, rationale, text) for code, citation, rationale, text in items}


# Data tables, one rule per entry: kept compact on purpose.
# fmt: off
STAGE_RULES = _rules(
    (URGENT, "G1", "Progressive neurological deficit or cauda equina signs need prompt surgical evaluation.",
     "Latest neuro exam shows a red flag."),
    ("initial_evaluation", "G1; G2", "MRI/CT, neuro exam and facet evaluation come before treatment.",
     "Until MRI/CT, neuro exam and pain/facet assessment are all recorded in the episode."),
    ("first_line", "G1; G3", "Active physical therapy and non-opioid medication are tried first.",
     "Initial evaluation complete."),
    ("second_line", "G3; IMMPACT", "An adequate first-line trial without meaningful relief escalates care.",
     "Active PT >= 6 weeks, non-opioid course, assessment >= 4 weeks into PT without meaningful relief."),
    ("refractory", "G5; G6; G1",
     "Pain persisting through psychological and interventional care is refractory.",
     "Second line, psychological therapy >= 8 weeks, an interventional procedure, no meaningful relief."),
)

FLAG_RULES = _rules(
    ("surgical_history_missing", "G1", "The pathway is for pain after laminectomy/foraminotomy.",
     "Confirm surgical history (laminectomy and/or foraminotomy)."),
    ("red_flag_neuro", "G1", "A progressive deficit or cauda equina signs may need surgery now.",
     "Prompt surgical evaluation."),
    ("imaging_needed", "G1; G2", "MRI/CT looks for recurrent herniation, inadequate decompression, instability.",
     "Obtain MRI/CT of the lumbar spine."),
    ("neuro_exam_needed", "G1; G2", "Progressive deficits must be excluded before conservative care.",
     "Neuro assessment: perform and record a neurological examination."),
    ("pain_assessment_needed", "G1; G2", "Pain and facet involvement (32 % after surgery) guide treatment.",
     "Pain and facet evaluation: record a pain assessment including facet evaluation."),
    ("surgical_target_on_imaging", "G1",
     "A surgical target exists, but repeat surgery comes after conservative care.",
     "Repeat surgery only after conservative care fails, with a clear target."),
    ("nerve_entrapment_in_scar", "G5", "Endoscopic decompression may help nerve entrapment in scar tissue.",
     "Consider percutaneous transforaminal endoscopic decompression."),
    ("facet_pain_suspected", "G2; G3", "Medial branch blocks diagnose facet pain before denervation.",
     "Medial branch blocks, then radiofrequency denervation if positive."),
    ("mbb_positive", "G3", "Positive diagnostic blocks indicate facet-mediated pain.",
     "Radiofrequency denervation."),
    ("radicular_pain", "G3", "Radicular pain after failed first line suits ESI, then SCS if it persists.",
     "Image-guided epidural steroid injection; spinal cord stimulation if persistent after other therapies."),
    ("transforaminal_without_image_guidance", "G3", "Transforaminal injections need image guidance.",
     "Use image guidance for transforaminal epidural steroid injections."),
    ("passive_pt_only", "G1", "Active therapy (core strengthening, stabilisation) beats passive modalities.",
     "Active PT, core strengthening, stabilisation (instead of passive modalities only)."),
    ("opioid_before_non_opioid_trial", "G3", "Non-opioid medications should be tried first.",
     "Try non-opioids first (NSAID, gabapentinoid, anticonvulsant, TCA or SNRI)."),
    ("opioid_monitoring_plan_missing", "G3",
     "Monitoring of side effects and compliance precedes long-term opioids.",
     "Monitoring strategy before long-term opioids: document side-effect and compliance monitoring."),
    ("opioid_no_meaningful_relief", "G3",
     "No meaningful relief within a month predicts no long-term benefit.",
     "Unlikely to benefit from longer-term use; consider taper."),
    ("opioid_tolerance_risk", "G3", "Tolerance and hyperalgesia can develop within 4 weeks of opioid use.",
     "Tolerance and hyperalgesia can develop within 4 weeks; reassess opioid therapy."),
    ("naloxone_indicated", "CDC22", "Overdose risk rises at >= 50 MME/day.",
     "Offer naloxone."),
    ("opioid_benzodiazepine_coprescription", "CDC22", "Opioids with benzodiazepines raise overdose risk.",
     "Avoid concurrent use of opioids and benzodiazepines."),
    ("psychological_therapy_recommended", "G3",
     "Psychological therapy relieves back pain for 4 weeks to 2 years.",
     "CBT, biofeedback or relaxation training."),
    ("multidisciplinary_rehab_recommended", "G6",
     "Multidisciplinary rehabilitation helps even high chronicity.",
     "Multidisciplinary pain rehabilitation."),
    ("scs_psychological_evaluation_needed", "NICE TA159; CMS LCD",
     "Psychological evaluation is required before spinal cord stimulation.",
     "Psychological evaluation before SCS (spinal cord stimulation)."),
    ("scs_trial_positive", "G3; NICE TA159", "A trial with enough relief supports implantation.",
     "Spinal cord stimulator implant may be considered."),
    ("scs_trial_negative", "G3; NICE TA159", "A trial without enough relief argues against implantation.",
     "Do not implant a spinal cord stimulator."),
    ("tens_caution", "G3; NICE NG59",
     "Sources disagree: G3 allows TENS as an adjunct, NICE NG59 advises against.",
     "TENS allowed as adjunct [G3]; NICE NG59 advises against TENS for low back pain."),
    ("imaging_without_indication", "G1", "Routine imaging does not improve outcomes and adds cost.",
     "Avoid routine imaging without specific clinical indications."),
    ("er_opioid_before_first_line_failed", "G3", "ER opioids are for pain unresponsive to other treatments.",
     "Extended-release opioids only for pain unresponsive to other treatments."),
    ("esi_without_radicular_pain", "G3", "Epidural steroid injections are for radicular pain.",
     "Epidural steroid injections are for radicular pain."),
    ("scs_before_other_therapies", "G3", "SCS is for persistent radicular pain after other therapies.",
     "Spinal cord stimulation for persistent radicular pain after other therapies."),
    ("repeat_surgery_criteria_unmet", "G1",
     "Repeat surgery needs failed conservative care and a clear target.",
     "Repeat surgery only after conservative care fails and with a clear surgical target."),
    ("responding_to_treatment", "IMMPACT", "A >= 30 % improvement is a meaningful response.",
     "Continue current plan."),
    ("poor_prognostic_factors", "G4",
     "Divorce, unemployment, diffuse complaints, psychological predominance, secondary gain: worse.",
     "Context for the coordinator: poor prognostic factors."),
    ("good_prognostic_factors", "G4; G1",
     "Motivation, support, good function, moderate psychology, symptoms < 1 year: better outcomes.",
     "Context for the coordinator: good prognostic factors."),
)

PROFILE_DEPENDENT_FLAGS = frozenset({"mbb_positive", "tens_caution"})

DEADLINE_RULES = _rules(
    ("urgent_surgical_referral", "G1", "Red-flag neuro findings need prompt surgical evaluation.",
     "Urgent surgical referral due: progressive deficit or cauda equina signs on neuro exam"),
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
     "Procedure follow-up due: record a pain assessment to judge the procedure's effect"),
)
# fmt: on
