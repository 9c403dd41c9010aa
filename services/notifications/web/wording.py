"""Plain words for the coordinators' workspace: what each flag the pathway engine can raise means and what to
do about it, written from pathway-spec.md §4 for a care coordinator (no abbreviation without its meaning).

The one table of this wording (tests/unit/notifications/test_workspace_wording.py checks that every flag code
the engine's catalogue can emit has a text here, and nothing else). The engine's own recommendation text,
which names the detail it found (risks, unmet criteria, the policy profile), is shown beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

STAGE_LABELS: Mapping[str, str] = {
    "initial_evaluation": "Initial evaluation",
    "first_line": "First-line treatment",
    "second_line": "Second-line treatment",
    "refractory": "Refractory pain",
    "urgent_surgical_evaluation": "Urgent surgical evaluation",
}
STAGE_ORDER = ("urgent_surgical_evaluation", "initial_evaluation", "first_line", "second_line", "refractory")

# fmt: off
FLAG_WORDS: Mapping[str, str] = {
    "surgical_history_missing": "We have no record of the back operation (laminectomy or foraminotomy) this "
        "pathway is for. Check the patient's surgical history.",
    "red_flag_neuro": "The latest nerve examination shows worsening weakness or signs of nerve compression at "
        "the base of the spine. The patient needs to see a spine surgeon urgently.",
    "surgical_evaluation_pending": "A warning sign was found on a nerve examination and no surgeon's review is "
        "recorded since. Make sure the urgent referral to the spine surgeon is completed.",
    "imaging_needed": "No MRI or CT scan of the spine is recorded for this episode. Arrange one.",
    "neuro_exam_needed": "No nerve examination is recorded for this episode. Arrange one.",
    "pain_assessment_needed": "No pain assessment (pain score, where it hurts, facet joint signs) is recorded "
        "for this episode. Arrange one.",
    "surgical_target_on_imaging": "The scan shows something a repeat operation could fix. Surgery comes only "
        "if other treatment fails; carry on with the current treatment meanwhile.",
    "nerve_entrapment_in_scar": "The pain has not responded and the scan shows a nerve caught in scar tissue. "
        "A keyhole (endoscopic) release of the nerve can be considered.",
    "facet_pain_suspected": "The pain may come from the small joints of the spine (facet joints). The next step "
        "is a test injection (medial branch block); if it helps, a nerve ablation (radiofrequency).",
    "mbb_positive": "The test injections helped enough: the pain comes from the facet joints. Radiofrequency "
        "ablation of the nerves to those joints can be offered.",
    "rfa_without_positive_blocks": "A radiofrequency ablation was done without positive test injections "
        "before it. Check the reason with the treating clinician.",
    "radicular_pain": "The pain runs down the leg (nerve root pain). A steroid injection guided by imaging can "
        "help; spinal cord stimulation if it persists after other treatment.",
    "neuropathic_agent_not_tried": "The pain runs down the leg and no nerve-pain medicine has been tried yet. "
        "Ask the prescriber about one.",
    "active_pt_not_started": "No physical therapy has been arranged although first-line treatment began two "
        "weeks ago. Arrange a referral to active physical therapy (exercise, core strengthening).",
    "non_opioid_not_started": "No pain medicine other than opioids has been tried although first-line "
        "treatment began two weeks ago. Ask the prescriber about one (usually an anti-inflammatory first).",
    "pt_not_started": "The patient was referred to physical therapy four weeks ago or more and has not started. "
        "Contact the patient and the therapy provider.",
    "pain_worsening": "Pain is clearly worse than at the start of the pathway. The patient needs to be seen "
        "again; a new scan may be needed.",
    "transforaminal_without_image_guidance": "A spinal injection through the side of the spine was given "
        "without imaging to guide the needle. These injections should be image-guided.",
    "passive_pt_only": "The physical therapy so far is only passive (massage, heat). Active exercise therapy is "
        "what helps: ask for it.",
    "opioid_before_non_opioid_trial": "An opioid was started before any other pain medicine was tried. Other "
        "medicines should be tried first.",
    "opioid_monitoring_plan_missing": "The patient takes opioids and no monitoring plan is recorded. Ask the "
        "prescriber to document one.",
    "opioid_no_meaningful_relief": "The opioid is not giving enough relief. It is unlikely to help in the long "
        "term: the prescriber should plan to taper or stop it and see the patient at least monthly.",
    "opioid_tolerance_risk": "The patient has taken opioids for four weeks or more; the body can get used to "
        "them (tolerance) or become more sensitive to pain.",
    "opioid_tolerance_or_hyperalgesia_reported": "The last opioid review found tolerance or increased pain "
        "sensitivity. The prescriber should reassess and consider a taper rather than a higher dose.",
    "opioid_mme_unknown": "The daily opioid dose (in morphine milligram equivalents, MME) is not recorded, so "
        "dose limits cannot be checked. Ask for it to be recorded.",
    "naloxone_indicated": "The patient has a higher overdose risk on opioids and has not been offered naloxone "
        "(the overdose antidote). Make sure it is offered.",
    "opioid_benzodiazepine_coprescription": "The patient takes an opioid and a benzodiazepine (a sedative) at "
        "the same time, which is dangerous. Tell the prescriber.",
    "psychological_therapy_recommended": "Psychological treatment (such as cognitive behavioural therapy) helps "
        "with long-lasting pain and has not started. Offer a referral.",
    "multidisciplinary_rehab_recommended": "A multidisciplinary pain rehabilitation programme (a team of "
        "specialists) is recommended and has not started. Offer a referral.",
    "scs_psychological_evaluation_needed": "A spinal cord stimulator trial was done without a psychological "
        "evaluation before it. One is required before a stimulator is implanted.",
    "scs_trial_positive": "The spinal cord stimulator trial helped and the conditions for an implant are met. "
        "An implant may be considered.",
    "scs_implant_criteria_unmet": "The spinal cord stimulator trial helped, but some conditions for an implant "
        "are not met yet (see the detail). Do not implant yet.",
    "scs_trial_negative": "The spinal cord stimulator trial did not help enough. A stimulator should not be "
        "implanted.",
    "tens_caution": "TENS (a small electrical nerve stimulation device) may be used alongside other treatment, "
        "but the UK guideline advises against it for low back pain.",
    "imaging_without_indication": "A scan was done without a stated reason. Routine scans without a clear "
        "reason should be avoided.",
    "er_opioid_before_first_line_failed": "A long-acting opioid was started before first-line treatment had "
        "been tried and failed. These are for pain that does not respond to other treatment.",
    "esi_without_radicular_pain": "A spinal steroid injection was given although the pain was only in the back. "
        "These injections are for pain running down the leg.",
    "scs_before_other_therapies": "A spinal cord stimulator trial was done before other treatment had been "
        "tried. Stimulation is for pain that persists after other treatment.",
    "repeat_surgery_criteria_unmet": "A repeat operation was done without a clear target on the scan or before "
        "other treatment had failed. Check the reason with the surgeon.",
    "responding_to_treatment": "The patient's pain is meaningfully better (at least 30 % less than at the "
        "start). Continue the current plan.",
    "poor_prognostic_factors": "Some personal or social circumstances make recovery harder (see the detail). "
        "Keep them in mind when planning care.",
    "good_prognostic_factors": "Some personal or social circumstances make recovery more likely (see the "
        "detail).",
}
# fmt: on


def flag_words(code: str) -> str:
    """The plain-language text of a flag; a flag of a newer rule set without wording yet says so."""
    return FLAG_WORDS.get(code, "A pathway alert (see the recommendation below).")


def stage_label(stage: str | None) -> str:
    if stage is None:
        return "Not evaluated yet"
    return STAGE_LABELS.get(stage, stage.replace("_", " ").capitalize())
