"""Every code table of the FHIR mapping, with its code system and source (docs/interop.md lists them).

Only the RxNorm value sets of the opioid guideline live elsewhere: they are loaded from their files
(terminology.py). A code not in these tables is not guessed: its resource is reported as unmappable.
Codes are matched on (system, code); the display texts are for people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

SOURCE_CPT = "AMA CPT 2026 descriptors (Nervous System 63001-63048, 62320-62380, 64479-64636, 63650-63685; Musculoskeletal 22558-22633)"
SOURCE_SNOMED = "SNOMED CT International Edition (concept ids checked against public terminology references; review with your terminology server)"
SOURCE_LOINC = "LOINC 2.8x (loinc.org)"
SOURCE_RXNORM = "RxNorm ingredient (IN) concepts, NLM"
SOURCE_ICD10 = "ICD-10 (WHO) / ICD-10-CM (CDC NCHS) category codes; a code matches its subcodes"
SOURCE_DICOM = "DICOM PS3.16 CID 29 Acquisition Modality"


@dataclass(frozen=True)
class CodeTable:
    name: str
    used_for: str
    source: str
    # (system, code) -> (carepath value, display)
    entries: dict[tuple[str, str], tuple[Any, str]]
    prefix_match: bool = False  # ICD-10 categories: "F11" matches "F11.20"

    def lookup(self, system: str | None, code: str | None) -> Any | None:
        if not system or not code:
            return None
        hit = self.entries.get((system, code))
        if hit is not None:
            return hit[0]
        if self.prefix_match:
            normalised = code.replace(".", "").upper()
            for (table_system, table_code), (value, _display) in self.entries.items():
                if table_system == system and normalised.startswith(table_code.replace(".", "")):
                    return value
        return None


def _table(name: str, used_for: str, source: str, rows: list[tuple[str, str, Any, str]], **kw: Any) -> CodeTable:
    return CodeTable(
        name, used_for, source, {(system, code): (value, display) for system, code, value, display in rows}, **kw
    )


# --- Procedure -----------------------------------------------------------------------------------------------
# value: ("surgery", {"procedure": …}) or ("procedure", {"kind": …, optional approach / image_guided})
_LAMI = ("surgery", {"procedure": "laminectomy"})
_LAMI_FORA = ("surgery", {"procedure": "laminectomy_foraminotomy"})
_REPEAT = ("procedure", {"kind": "repeat_surgery"})

PROCEDURES = _table(
    "procedures",
    "Procedure.code → surgery (index surgery) or procedure (interventional, repeat surgery)",
    f"{SOURCE_CPT}; {SOURCE_SNOMED}",
    [
        (CPT, "63005", _LAMI, "Laminectomy, 1-2 vertebral segments; lumbar, except for spondylolisthesis"),
        (CPT, "63011", _LAMI, "Laminectomy, 1-2 vertebral segments; sacral"),
        (
            CPT,
            "63012",
            _LAMI,
            "Laminectomy with removal of abnormal facets and/or pars inter-articularis, lumbar (Gill type)",
        ),
        (CPT, "63015", _LAMI, "Laminectomy, more than 2 vertebral segments; cervical"),
        (CPT, "63016", _LAMI, "Laminectomy, more than 2 vertebral segments; thoracic"),
        (CPT, "63017", _LAMI, "Laminectomy, more than 2 vertebral segments; lumbar"),
        (
            CPT,
            "63020",
            _LAMI_FORA,
            "Laminotomy (hemilaminectomy) with decompression of nerve root(s), partial facetectomy, foraminotomy and/or discectomy; 1 interspace, cervical",
        ),
        (
            CPT,
            "63030",
            _LAMI_FORA,
            "Laminotomy (hemilaminectomy) with decompression of nerve root(s), partial facetectomy, foraminotomy and/or discectomy; 1 interspace, lumbar",
        ),
        (CPT, "63035", _LAMI_FORA, "Laminotomy (hemilaminectomy) …; each additional interspace, cervical or lumbar"),
        (CPT, "63040", _REPEAT, "Laminotomy with decompression …, reexploration, single interspace; cervical"),
        (CPT, "63042", _REPEAT, "Laminotomy with decompression …, reexploration, single interspace; lumbar"),
        (CPT, "63043", _REPEAT, "Reexploration, each additional cervical interspace"),
        (CPT, "63044", _REPEAT, "Reexploration, each additional lumbar interspace"),
        (CPT, "63045", _LAMI_FORA, "Laminectomy, facetectomy and foraminotomy, single segment; cervical"),
        (CPT, "63046", _LAMI_FORA, "Laminectomy, facetectomy and foraminotomy, single segment; thoracic"),
        (CPT, "63047", _LAMI_FORA, "Laminectomy, facetectomy and foraminotomy, single segment; lumbar"),
        (CPT, "63048", _LAMI_FORA, "Laminectomy, facetectomy and foraminotomy; each additional segment"),
        (CPT, "22558", ("surgery", {"procedure": "fusion"}), "Arthrodesis, anterior interbody; lumbar"),
        (CPT, "22612", ("surgery", {"procedure": "fusion"}), "Arthrodesis, posterior or posterolateral; lumbar"),
        (
            CPT,
            "22630",
            ("surgery", {"procedure": "fusion"}),
            "Arthrodesis, posterior interbody, including laminectomy and/or discectomy; lumbar",
        ),
        (
            CPT,
            "22633",
            ("surgery", {"procedure": "fusion"}),
            "Arthrodesis, combined posterior/posterolateral and posterior interbody; lumbar",
        ),
        (
            CPT,
            "62320",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "interlaminar", "image_guided": False}),
            "Injection, interlaminar epidural, cervical or thoracic; without imaging guidance",
        ),
        (
            CPT,
            "62321",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "interlaminar", "image_guided": True}),
            "Injection, interlaminar epidural, cervical or thoracic; with imaging guidance",
        ),
        (
            CPT,
            "62322",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "interlaminar", "image_guided": False}),
            "Injection, interlaminar epidural, lumbar or sacral (caudal); without imaging guidance",
        ),
        (
            CPT,
            "62323",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "interlaminar", "image_guided": True}),
            "Injection, interlaminar epidural, lumbar or sacral (caudal); with imaging guidance",
        ),
        (
            CPT,
            "64479",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "transforaminal", "image_guided": True}),
            "Injection, transforaminal epidural, with imaging guidance; cervical or thoracic, single level",
        ),
        (
            CPT,
            "64483",
            ("procedure", {"kind": "epidural_steroid_injection", "approach": "transforaminal", "image_guided": True}),
            "Injection, transforaminal epidural, with imaging guidance; lumbar or sacral, single level",
        ),
        (
            CPT,
            "64490",
            ("procedure", {"kind": "medial_branch_block", "image_guided": True}),
            "Injection, paravertebral facet joint or nerves innervating that joint, with imaging guidance; cervical or thoracic, single level",
        ),
        (
            CPT,
            "64493",
            ("procedure", {"kind": "medial_branch_block", "image_guided": True}),
            "Injection, paravertebral facet joint or nerves innervating that joint, with imaging guidance; lumbar or sacral, single level",
        ),
        (
            CPT,
            "64494",
            ("procedure", {"kind": "medial_branch_block", "image_guided": True}),
            "… lumbar or sacral; second level",
        ),
        (
            CPT,
            "64633",
            ("procedure", {"kind": "radiofrequency_denervation", "image_guided": True}),
            "Destruction by neurolytic agent, paravertebral facet joint nerve(s), with imaging guidance; cervical or thoracic, single joint",
        ),
        (
            CPT,
            "64635",
            ("procedure", {"kind": "radiofrequency_denervation", "image_guided": True}),
            "Destruction by neurolytic agent, paravertebral facet joint nerve(s), with imaging guidance; lumbar or sacral, single joint",
        ),
        (
            CPT,
            "64636",
            ("procedure", {"kind": "radiofrequency_denervation", "image_guided": True}),
            "… lumbar or sacral; each additional facet joint",
        ),
        (
            CPT,
            "63650",
            ("procedure", {"kind": "scs_trial"}),
            "Percutaneous implantation of neurostimulator electrode array, epidural (a trial unless 63685 is coded too)",
        ),
        (
            CPT,
            "63655",
            ("procedure", {"kind": "scs_implant"}),
            "Laminectomy for implantation of neurostimulator electrodes, plate/paddle, epidural",
        ),
        (
            CPT,
            "63685",
            ("procedure", {"kind": "scs_implant"}),
            "Insertion or replacement of spinal neurostimulator pulse generator or receiver",
        ),
        (
            CPT,
            "62380",
            ("procedure", {"kind": "endoscopic_decompression"}),
            "Endoscopic decompression of spinal cord, nerve root(s), including laminotomy, partial facetectomy, foraminotomy, discectomy; 1 interspace, lumbar",
        ),
        (SNOMED, "387731002", _LAMI, "Laminectomy"),
        (SNOMED, "11585007", ("surgery", {"procedure": "foraminotomy"}), "Foraminotomy"),
        (SNOMED, "42515009", ("surgery", {"procedure": "discectomy"}), "Excision of intervertebral disc"),
        (SNOMED, "178625001", ("surgery", {"procedure": "discectomy"}), "Primary lumbar microdiscectomy"),
        (SNOMED, "55705006", ("surgery", {"procedure": "fusion"}), "Spinal fusion"),
    ],
)
# 63650 with 63685 in the same Procedure is the permanent implant, not a trial.
SCS_IMPLANT_WITH = (CPT, "63685")

# --- Observation ---------------------------------------------------------------------------------------------
PAIN_INTENSITY = _table(
    "pain_intensity",
    "Observation.code → pain_assessment.pain_nrs (value 0-10: valueInteger or valueQuantity)",
    SOURCE_LOINC,
    [
        (LOINC, "72514-3", "pain_nrs", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
        (LOINC, "38208-5", "pain_nrs", "Pain severity - Reported"),
        (LOINC, "56840-2", "pain_nrs", "Pain severity verbal numeric scale [Score] (discouraged by LOINC; still sent)"),
        (SNOMED, "225908003", "pain_nrs", "Pain score (Dutch zib PainScore, European EHRs)"),
    ],
)
PEG = _table(
    "peg",
    "Observation.component (or a PEG panel's value) → pain_assessment.function_peg (0-10)",
    SOURCE_LOINC,
    [
        (LOINC, "91147-9", "function_peg", "PEG 3 item pain scale mean score"),
        (LOINC, "91148-7", "function_peg", "PEG 3 item pain scale (panel; its valueQuantity is the mean)"),
    ],
)
# Observation.bodySite → pain_assessment.distribution: back only = axial, leg only = radicular, both = mixed.
PAIN_SITES = _table(
    "pain_sites",
    "Observation.bodySite (and component bodySite) → pain_assessment.distribution",
    SOURCE_SNOMED,
    [
        (SNOMED, "37822005", "back", "Lower back structure"),
        (SNOMED, "61685007", "leg", "Lower limb structure"),
    ],
)
NEURO_EXAM = _table(
    "neuro_findings",
    "Observation.code (valueBoolean true/false) → neuro_exam",
    SOURCE_SNOMED,
    [
        (SNOMED, "192970008", "cauda_equina_signs", "Cauda equina syndrome"),
    ],
)

# --- Condition ----------------------------------------------------------------------------------------------
# value: ("neuro_exam", {...}) for red flags, ("psychosocial", factor) for risks
_CES = ("neuro_exam", {"progressive_deficit": False, "cauda_equina_signs": True})
_SUD = ("psychosocial", "substance_use_disorder")
_OD = ("psychosocial", "prior_overdose")
CONDITIONS = _table(
    "conditions",
    "Condition.code → neuro_exam (red flag) or psychosocial factor (risk)",
    f"{SOURCE_SNOMED}; {SOURCE_ICD10}",
    [
        (SNOMED, "192970008", _CES, "Cauda equina syndrome"),
        (ICD10, "G83.4", _CES, "Cauda equina syndrome"),
        (ICD10CM, "G83.4", _CES, "Cauda equina syndrome"),
        (SNOMED, "66214007", _SUD, "Substance abuse"),
        (SNOMED, "5602001", _SUD, "Opioid abuse"),
        (SNOMED, "75544000", _SUD, "Opioid dependence"),
        (ICD10, "F11", _SUD, "Mental and behavioural disorders due to use of opioids"),
        (ICD10CM, "F11", _SUD, "Opioid related disorders"),
        (ICD10, "F13", _SUD, "Disorders due to use of sedatives or hypnotics"),
        (ICD10CM, "F13", _SUD, "Sedative, hypnotic, or anxiolytic related disorders"),
        (ICD10, "F19", _SUD, "Disorders due to multiple drug use and use of other psychoactive substances"),
        (ICD10CM, "F19", _SUD, "Other psychoactive substance related disorders"),
        (SNOMED, "55680006", _OD, "Drug overdose"),
        (SNOMED, "242253008", _OD, "Overdose of opiate"),
        (ICD10, "T40.0", _OD, "Poisoning by opium"),
        (ICD10, "T40.1", _OD, "Poisoning by heroin"),
        (ICD10, "T40.2", _OD, "Poisoning by other opioids"),
        (ICD10, "T40.3", _OD, "Poisoning by methadone"),
        (ICD10, "T40.4", _OD, "Poisoning by other synthetic narcotics"),
        (ICD10CM, "T40.0", _OD, "Poisoning by opium"),
        (ICD10CM, "T40.1", _OD, "Poisoning by heroin"),
        (ICD10CM, "T40.2", _OD, "Poisoning by other opioids"),
        (ICD10CM, "T40.3", _OD, "Poisoning by methadone"),
        (ICD10CM, "T40.4", _OD, "Poisoning by other synthetic narcotics"),
    ],
    prefix_match=True,
)

# --- ServiceRequest / Encounter ------------------------------------------------------------------------------
THERAPIES = _table(
    "therapies",
    "ServiceRequest.code / Encounter.type / Encounter.serviceType → therapy.kind",
    SOURCE_SNOMED,
    [
        (SNOMED, "91251008", "physical_therapy", "Physical therapy procedure"),
        (SNOMED, "228557008", "cbt", "Cognitive and behavioral therapy"),
        (SNOMED, "75516001", "supportive_psychotherapy", "Psychotherapy"),
    ],
)

# --- Medication (non-opioid classes) -------------------------------------------------------------------------
# RxNorm ingredient codes; a product code (SCD/SBD) resolves by the ingredient name that starts its RxNorm name.
NON_OPIOIDS = _table(
    "non_opioid_ingredients",
    "medicationCodeableConcept (RxNorm ingredient code, or a product whose RxNorm name starts with the ingredient) → medication.drug_class",
    SOURCE_RXNORM,
    [
        (RXNORM, "5640", "nsaid", "ibuprofen"),
        (RXNORM, "7258", "nsaid", "naproxen"),
        (RXNORM, "3355", "nsaid", "diclofenac"),
        (RXNORM, "140587", "nsaid", "celecoxib"),
        (RXNORM, "41493", "nsaid", "meloxicam"),
        (RXNORM, "35827", "nsaid", "ketorolac"),
        (RXNORM, "24605", "nsaid", "etodolac"),
        (RXNORM, "5781", "nsaid", "indomethacin"),
        (RXNORM, "31448", "nsaid", "nabumetone"),
        (RXNORM, "25480", "gabapentinoid", "gabapentin"),
        (RXNORM, "187832", "gabapentinoid", "pregabalin"),
        (RXNORM, "2002", "sodium_channel_anticonvulsant", "carbamazepine"),
        (RXNORM, "32624", "sodium_channel_anticonvulsant", "oxcarbazepine"),
        (RXNORM, "28439", "sodium_channel_anticonvulsant", "lamotrigine"),
        (RXNORM, "8183", "sodium_channel_anticonvulsant", "phenytoin"),
        (RXNORM, "623404", "sodium_channel_anticonvulsant", "lacosamide"),
        (RXNORM, "704", "tca", "amitriptyline"),
        (RXNORM, "7531", "tca", "nortriptyline"),
        (RXNORM, "5691", "tca", "imipramine"),
        (RXNORM, "3247", "tca", "desipramine"),
        (RXNORM, "3638", "tca", "doxepin"),
        (RXNORM, "72625", "snri", "duloxetine"),
        (RXNORM, "39786", "snri", "venlafaxine"),
        (RXNORM, "734064", "snri", "desvenlafaxine"),
        (RXNORM, "588250", "snri", "milnacipran"),
    ],
)
NON_OPIOID_BY_NAME = {display: value for (_system, _code), (value, display) in NON_OPIOIDS.entries.items()}

# --- Imaging ------------------------------------------------------------------------------------------------
MODALITIES = _table(
    "modalities",
    "ImagingStudy.modality / series.modality → imaging.modality",
    SOURCE_DICOM,
    [
        (DICOM, "MR", "mri", "Magnetic Resonance"),
        (DICOM, "CT", "ct", "Computed Tomography"),
        (DICOM, "CR", "xray", "Computed Radiography"),
        (DICOM, "DX", "xray", "Digital Radiography"),
    ],
)
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
IMAGING_REPORTS = _table(
    "imaging_report_categories",
    "DiagnosticReport.category → imaging.modality (else the modality of the ImagingStudy it references in the Bundle)",
    "HL7 v2 table 0074 Diagnostic Service Section ID",
    [
        (V2_0074, "NMR", "mri", "Nuclear Magnetic Resonance"),
        (V2_0074, "CT", "ct", "CAT Scan"),
        (V2_0074, "RX", "xray", "Radiograph"),
    ],
)
# DiagnosticReport.conclusionCode → imaging.findings. Deliberately empty until reviewed with a terminology
# server: a finding code mapped wrongly changes the pathway (a surgical target). Unmapped conclusion codes
# are reported per entry; the imaging itself still counts (modality, no findings).
IMAGING_FINDINGS = _table(
    "imaging_findings",
    "DiagnosticReport.conclusionCode → imaging.findings (empty: no reviewed codes yet; unmapped codes are reported)",
    SOURCE_SNOMED,
    [],
)

ALL_TABLES = (
    PROCEDURES,
    PAIN_INTENSITY,
    PEG,
    PAIN_SITES,
    NEURO_EXAM,
    CONDITIONS,
    THERAPIES,
    NON_OPIOIDS,
    MODALITIES,
    IMAGING_REPORTS,
    IMAGING_FINDINGS,
)


def first_match(table: CodeTable, concept: Any) -> tuple[Any, Any] | None:
    """The first coding of a CodeableConcept (a fhir.resources model) that the table maps: (value, coding)."""
    for coding in getattr(concept, "coding", None) or []:
        value = table.lookup(coding.system, coding.code)
        if value is not None:
            return value, coding
    return None
