"""Guideline metadata of every flag: citation, one-line rationale and the coordinator's recommendation.

Citations are codes of the source catalogue (sources.py, docs/sources.md). Texts say what to do, for whom
and why; `{detail}` is filled with what the rule found (risks, unmet criteria, factors) and `{profile}` with
the policy profile and its source. No text spells a citation code without its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RULE_SET_VERSION = "lbp-postlam-2026.2"

STAGE_ORDER = ("initial_evaluation", "first_line", "second_line", "refractory")
URGENT = "urgent_surgical_evaluation"


@dataclass(frozen=True)
class RuleInfo:
    code: str
    citation: str
    rationale: str
    text: str  # recommendation (flags) or one-line coordinator text (deadlines)


def rules(*items: tuple[str, str, str, str]) -> Mapping[str, RuleInfo]:
    return {code: RuleInfo(code, citation, rationale, text) for code, citation, rationale, text in items}


# Data tables, one rule per entry: kept compact on purpose.
# fmt: off
FLAG_RULES = rules(
    ("surgical_history_missing", "G1", "The pathway is for pain after laminectomy/foraminotomy.",
     "Confirm surgical history: no laminectomy or foraminotomy is recorded for this patient, and this pathway "
     "is for persistent pain after those operations."),
    ("red_flag_neuro", "G1", "A progressive deficit or cauda equina signs may need surgery now.",
     "Prompt surgical evaluation: the latest neuro exam shows a progressive deficit or cauda equina signs; "
     "arrange an urgent spine surgeon review today."),
    ("surgical_evaluation_pending", "G1", "A red flag needs a surgeon's evaluation even after the exam clears.",
     "A red flag was found and no surgical evaluation is recorded since: complete the referral to a spine "
     "surgeon (a deficit that stops progressing still needs the surgeon)."),
    ("imaging_needed", "G1; G2", "MRI/CT looks for recurrent herniation, inadequate decompression, instability.",
     "Obtain MRI/CT of the lumbar spine to look for recurrent disc herniation, inadequate decompression, "
     "instability or adjacent segment disease."),
    ("neuro_exam_needed", "G1; G2", "Progressive deficits must be excluded before conservative care.",
     "Neuro assessment: arrange and record a neurological examination to exclude a progressive deficit."),
    ("pain_assessment_needed", "G1; G2", "Pain and facet involvement (32 % after surgery) guide treatment.",
     "Pain and facet evaluation: record a pain assessment (pain score, distribution, facet involvement, "
     "present in about a third of patients after surgery)."),
    ("surgical_target_on_imaging", "G1",
     "A surgical target exists, but repeat surgery comes after conservative care.",
     "Imaging shows a possible surgical target: repeat surgery only after conservative care fails, with a "
     "clear target; continue conservative care meanwhile."),
    ("nerve_entrapment_in_scar", "G5", "Endoscopic decompression may help nerve entrapment in scar tissue.",
     "Refractory pain with nerve entrapment in scar tissue on imaging: consider percutaneous transforaminal "
     "endoscopic decompression."),
    ("facet_pain_suspected", "G2; G3", "Medial branch blocks diagnose facet pain before denervation.",
     "Facet pain is suspected: medial branch blocks, then radiofrequency denervation if positive."),
    ("mbb_positive", "G3", "Positive diagnostic blocks indicate facet-mediated pain.",
     "Medial branch blocks were positive {profile}: refer for radiofrequency denervation."),
    ("rfa_without_positive_blocks", "G3; CMS LCD", "RF denervation needs positive diagnostic blocks first.",
     "Radiofrequency denervation was done without positive diagnostic medial branch blocks before it "
     "{profile}: RFA only after positive diagnostic medial branch blocks; review the indication before "
     "any repeat."),
    ("radicular_pain", "G3", "Radicular pain after failed first line suits ESI, then SCS if it persists.",
     "Radicular pain persisting after first-line care: image-guided epidural steroid injection; spinal cord "
     "stimulation if persistent after other therapies."),
    ("neuropathic_agent_not_tried", "G3", "Neuropathic pain components respond to anticonvulsants/antidepressants.",
     "Radicular (neuropathic) pain and no neuropathic agent tried: for the neuropathic component consider an "
     "anticonvulsant (α-2-δ or sodium-channel) or an antidepressant (TCA or SNRI)."),
    ("active_pt_not_started", "G1", "Active physical therapy is first-line care.",
     "No physical therapy referral yet, 2 weeks into first-line care: refer to active physical therapy: core "
     "strengthening and stabilisation."),
    ("non_opioid_not_started", "G3", "Non-opioid analgesics are tried first.",
     "No non-opioid analgesic yet, 2 weeks into first-line care: try a non-opioid analgesic (NSAID first)."),
    ("pt_not_started", "G1", "A referral that never starts leaves first-line care stalled.",
     "The PT referral has not started after 4 weeks: contact the patient and the provider to get active "
     "physical therapy started."),
    ("pain_worsening", "G1", "Late deterioration after laminectomy may reflect postoperative instability.",
     "Pain is worsening: reassess; late deterioration may reflect postoperative instability — image with "
     "that indication if needed ({detail})."),
    ("transforaminal_without_image_guidance", "G3", "Transforaminal injections need image guidance.",
     "A transforaminal epidural steroid injection is not documented as image-guided: use image guidance."),
    ("passive_pt_only", "G1", "Active therapy (core strengthening, stabilisation) beats passive modalities.",
     "Only passive physical therapy is recorded: switch to active PT, core strengthening, stabilisation."),
    ("opioid_before_non_opioid_trial", "G3", "Non-opioid medications should be tried first.",
     "An opioid was started before any non-opioid analgesic: try non-opioids first (NSAID, gabapentinoid, "
     "anticonvulsant, TCA or SNRI)."),
    ("opioid_monitoring_plan_missing", "G3",
     "Monitoring of side effects and compliance precedes long-term opioids.",
     "On opioids without a documented plan: monitoring strategy before long-term opioids (side effects, "
     "adverse effects, compliance)."),
    ("opioid_no_meaningful_relief", "G3; CDC22",
     "No meaningful relief within a month predicts no long-term benefit.",
     "The latest opioid review shows no meaningful relief: this patient is unlikely to benefit from "
     "longer-term use: taper or stop, and follow up at least monthly."),
    ("opioid_tolerance_risk", "G3", "Tolerance and hyperalgesia can develop within 4 weeks of opioid use.",
     "On opioids for 4 weeks or more: tolerance and hyperalgesia can develop within 4 weeks; reassess the "
     "need for opioids."),
    ("opioid_tolerance_or_hyperalgesia_reported", "G3", "Tolerance or hyperalgesia argue against dose increases.",
     "Tolerance or opioid-induced hyperalgesia reported at the latest review: reassess and consider a taper "
     "rather than a dose increase."),
    ("opioid_mme_unknown", "CDC22", "Dose thresholds (50 MME/day) can only be checked with a known dose.",
     "An opioid course has no daily dose recorded: record the daily dose in MME so that dose thresholds can "
     "be checked."),
    ("naloxone_indicated", "CDC22", "Overdose risk: high dose, benzodiazepines, substance use, prior overdose.",
     "Offer naloxone to this patient on opioids: overdose risk from {detail}."),
    ("opioid_benzodiazepine_coprescription", "CDC22", "Opioids with benzodiazepines raise overdose risk.",
     "On opioids and a benzodiazepine together: avoid concurrent use; review with the prescribers."),
    ("psychological_therapy_recommended", "G3",
     "Psychological therapy relieves back pain for 4 weeks to 2 years.",
     "Second-line care without psychological therapy: CBT, biofeedback or relaxation training."),
    ("multidisciplinary_rehab_recommended", "G6",
     "Multidisciplinary rehabilitation helps even high chronicity.",
     "Multidisciplinary pain rehabilitation, which helps even at higher grades of chronicity: refer this "
     "patient ({detail})."),
    ("scs_psychological_evaluation_needed", "NICE TA159; CMS LCD",
     "Psychological evaluation is required before spinal cord stimulation.",
     "A spinal cord stimulation trial without a psychological evaluation before it: psychological evaluation "
     "before SCS."),
    ("scs_trial_positive", "G3; NICE TA159; CMS LCD", "A trial with enough relief supports implantation.",
     "The spinal cord stimulation trial was positive and the implant criteria held (second-line care, "
     "radicular pain, psychological evaluation): implant may be considered."),
    ("scs_implant_criteria_unmet", "G3; NICE TA159; CMS LCD",
     "A positive trial alone does not justify an implant.",
     "The spinal cord stimulation trial gave enough relief, but do not implant yet: {detail}."),
    ("scs_trial_negative", "NICE TA159", "A trial without enough relief argues against implantation.",
     "The spinal cord stimulation trial did not give enough relief: do not implant."),
    ("tens_caution", "G3; NICE NG59",
     "Sources disagree: the practice guideline allows TENS as an adjunct, NICE guideline NG59 advises against.",
     "TENS is recorded: allowed as adjunct by {g3}; NICE NG59 advises against TENS for low back pain "
     "({ng59}), so do not rely on it."),
    ("imaging_without_indication", "G1", "Routine imaging does not improve outcomes and adds cost.",
     "Imaging after the initial evaluation has no recorded indication: avoid routine imaging without "
     "specific clinical indications; record the indication."),
    ("er_opioid_before_first_line_failed", "G3", "ER opioids are for pain unresponsive to other treatments.",
     "An extended-release opioid was started before first-line care failed: extended-release opioids only "
     "for pain unresponsive to other treatments."),
    ("esi_without_radicular_pain", "G3", "Epidural steroid injections are for radicular pain.",
     "An epidural steroid injection was given for axial pain: epidural steroid injections are for radicular "
     "pain."),
    ("scs_before_other_therapies", "G3", "SCS is for persistent radicular pain after other therapies.",
     "A spinal cord stimulation trial came before second-line care: spinal cord stimulation for persistent "
     "radicular pain after other therapies."),
    ("repeat_surgery_criteria_unmet", "G1",
     "Repeat surgery needs failed conservative care and a clear target.",
     "A repeat surgery was done without a surgeon's plan, before conservative care failed or without a "
     "target on imaging: repeat surgery only after conservative care fails and with a clear surgical "
     "target."),
    ("responding_to_treatment", "IMMPACT", "A >= 30 % improvement is a meaningful response.",
     "Meaningful relief (at least 30 % better than the baseline, or stated and not contradicted): continue "
     "current plan."),
    ("poor_prognostic_factors", "G4",
     "Divorce, unemployment, diffuse complaints, psychological predominance, secondary gain: worse.",
     "Context for the coordinator: poor prognostic factors ({detail}) predict a worse outcome; consider "
     "early psychological and multidisciplinary support."),
    ("good_prognostic_factors", "G4; G1",
     "Motivation, support, good function, moderate psychology, symptoms < 1 year: better outcomes.",
     "Context for the coordinator: good prognostic factors ({detail}) predict a better outcome."),
)
# fmt: on

PROFILE_DEPENDENT_FLAGS = frozenset({"mbb_positive", "rfa_without_positive_blocks"})
