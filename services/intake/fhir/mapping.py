"""FHIR R4 resources (fhir.resources R4B models) → updates of pathway-spec.md §1.

Each mapper returns the updates one resource (version) means, with notes for the import report, or raises
Unmappable (valid FHIR that carepath does not record: reported, stores nothing) or Invalid (an element is
wrong or missing: in a transaction, nothing is stored). A later version of a recorded resource is compared
with the state kept for the earlier one: a medication that stops becomes a `medication` `stopped` update."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.intake.fhir.outcome import Issue, error, information, warning
from shared.fhir import codes, medications, mme
from shared.fhir.terminology import OpioidCds

SUPPORTED = (
    "Procedure",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
    "Encounter",
    "ImagingStudy",
    "DiagnosticReport",
    "Condition",
)


class Unmappable(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.diagnostics)
        self.issue = issue


class Invalid(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(issue.diagnostics for issue in issues))
        self.issues = issues


@dataclass
class Mapped:
    updates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Issue] = field(default_factory=list)
    status: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    cds: OpioidCds
    prefix: str  # "Bundle.entry[3].resource"
    # A resource of the Bundle by reference ("ImagingStudy/1", "urn:uuid:…"), for DiagnosticReport → ImagingStudy
    resolve: Callable[[str], Any]
    # Whether a therapy of this kind started at or before the instant (stored, or earlier in this Bundle)
    therapy_started: Callable[[str, datetime], bool]
    # Entry indexes of ImagingStudy resources that a DiagnosticReport of the Bundle reports on
    reported_studies: set[str] = field(default_factory=set)
    full_url: str | None = None


def _instant(ctx: Context, element: str, value: Any) -> str:
    """An element's instant as RFC 3339 with offset; a date without time (or a naive time) is refused."""
    if value is None:
        raise Invalid([error(f"{ctx.prefix}.{element}", f"{element} is required: when it happened", "required")])
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat(timespec="seconds" if not value.microsecond else "microseconds")
    if isinstance(value, date | datetime):
        raise Invalid(
            [error(f"{ctx.prefix}.{element}", f"{element} needs a time and a UTC offset, not a date alone", "value")]
        )
    raise Invalid([error(f"{ctx.prefix}.{element}", f"{element} is not a dateTime", "value")])


def _first_instant(ctx: Context, resource: Any, *candidates: str) -> str:
    """The first present of dotted candidates ("performedDateTime", "performedPeriod.start")."""
    for candidate in candidates:
        value: Any = resource
        for part in candidate.split("."):
            value = getattr(value, part, None) if value is not None else None
        if value is not None:
            return _instant(ctx, candidate, value)
    names = " or ".join(candidates)
    raise Invalid([error(f"{ctx.prefix}.{candidates[0]}", f"{names} is required: when it happened", "required")])


def _codings(concept: Any) -> list[Any]:
    return list(getattr(concept, "coding", None) or [])


def _describe(concept: Any) -> str:
    """The codes of a concept for a message: system|code only, never free text (which may hold PHI)."""
    found = [f"{c.system or '?'}|{c.code or '?'}" for c in _codings(concept)]
    return ", ".join(found) if found else "no coding"


def _lookup(ctx: Context, table: codes.CodeTable, concept: Any, element: str) -> tuple[Any, Any]:
    hit = codes.first_match(table, concept)
    if hit is None:
        raise Unmappable(
            warning(
                f"{ctx.prefix}.{element}",
                f"{element} ({_describe(concept)}) is not a code carepath maps (table {table.name})",
                "code-invalid",
            )
        )
    return hit


def _update(type_name: str, occurred_at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_name, "occurred_at": occurred_at, "data": data}


def _status(ctx: Context, resource: Any, allowed: tuple[str, ...]) -> str:
    status = str(getattr(resource, "status", "") or "")
    if status not in allowed:
        raise Unmappable(
            warning(
                f"{ctx.prefix}.status",
                f"status {status!r} is not recorded (recorded: {', '.join(allowed)})",
                "business-rule",
            )
        )
    return status


def _new_version_note(ctx: Context) -> Mapped:
    return Mapped(
        notes=[information(ctx.prefix, "a new version of a recorded resource: recorded facts are not amended")]
    )


# --- Procedure ---------------------------------------------------------------------------------------------
def procedure(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    status = _status(ctx, resource, ("completed",))
    (type_name, data), _coding = _lookup(ctx, codes.PROCEDURES, resource.code, "code")
    data = dict(data)
    if data.get("kind") == "scs_trial" and any(
        (c.system, c.code) == codes.SCS_IMPLANT_WITH for c in _codings(resource.code)
    ):
        data = {"kind": "scs_implant"}
    occurred_at = _first_instant(ctx, resource, "performedDateTime", "performedPeriod.start")
    return Mapped([_update(type_name, occurred_at, data)], status=status)


# --- Observation -------------------------------------------------------------------------------------------
_OBSERVATION_DONE = ("final", "amended", "corrected")


def _score(ctx: Context, holder: Any, element: str) -> int | float:
    """valueInteger, or valueQuantity.value; a whole number for NRS is checked by the update validation."""
    if getattr(holder, "valueInteger", None) is not None:
        return int(holder.valueInteger)
    quantity = getattr(holder, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        value = quantity.value
        return int(value) if value == int(value) else float(value)
    raise Invalid(
        [error(f"{element}.value[x]", "a score needs valueInteger or valueQuantity.value (0-10)", "required")]
    )


def _distribution(ctx: Context, resource: Any) -> str:
    sites = {codes.PAIN_SITES.lookup(c.system, c.code) for c in _codings(getattr(resource, "bodySite", None))}
    sites.discard(None)
    if sites == {"back"}:
        return "axial"
    if sites == {"leg"}:
        return "radicular"
    if sites == {"back", "leg"}:
        return "mixed"
    raise Invalid(
        [
            error(
                f"{ctx.prefix}.bodySite",
                "bodySite is required for the pain distribution: SNOMED CT 37822005 (lower back) → axial, "
                "61685007 (lower limb) → radicular, both codings → mixed",
                "required",
            )
        ]
    )


def observation(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    status = _status(ctx, resource, _OBSERVATION_DONE)
    occurred_at = _first_instant(ctx, resource, "effectiveDateTime", "effectiveInstant", "effectivePeriod.start")
    if codes.first_match(codes.PAIN_INTENSITY, resource.code) is not None:
        data: dict[str, Any] = {"pain_nrs": _score(ctx, resource, ctx.prefix)}
        for index, component in enumerate(getattr(resource, "component", None) or []):
            if codes.first_match(codes.PEG, component.code) is not None:
                data["function_peg"] = _score(ctx, component, f"{ctx.prefix}.component[{index}]")
        data["distribution"] = _distribution(ctx, resource)
        return Mapped([_update("pain_assessment", occurred_at, data)], status=status)
    if codes.first_match(codes.NEURO_EXAM, resource.code) is not None:
        present = getattr(resource, "valueBoolean", None)
        if present is None:
            raise Invalid(
                [error(f"{ctx.prefix}.valueBoolean", "a neurological finding needs valueBoolean", "required")]
            )
        data = {"progressive_deficit": False, "cauda_equina_signs": bool(present)}
        return Mapped([_update("neuro_exam", occurred_at, data)], status=status)
    if codes.first_match(codes.PEG, resource.code) is not None:
        raise Unmappable(
            warning(
                f"{ctx.prefix}.code",
                "a PEG score alone cannot be recorded: send it as a component of the pain intensity Observation",
                "incomplete",
            )
        )
    _lookup(ctx, codes.PAIN_INTENSITY, resource.code, "code")  # raises with the table's name
    raise AssertionError("unreachable")


# --- MedicationRequest / MedicationStatement ------------------------------------------------------------------
_REQUEST_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")


def _medication_concept(resource: Any, ctx: Context) -> tuple[Any, str]:
    concept = getattr(resource, "medicationCodeableConcept", None)
    if concept is not None:
        return concept, "medicationCodeableConcept"
    reference = getattr(getattr(resource, "medicationReference", None), "reference", None)
    medication = ctx.resolve(reference) if reference else None
    if medication is not None and getattr(medication, "code", None) is not None:
        return medication.code, "medicationReference"
    raise Unmappable(
        warning(
            f"{ctx.prefix}.medication[x]",
            "the medication is neither a medicationCodeableConcept nor a Medication in this Bundle",
            "incomplete",
        )
    )


def _drug_class(ctx: Context, concept: Any, element: str) -> tuple[str, str | None]:
    """(drug class, RxNorm name) of the first RxNorm coding carepath knows."""
    found = medications.classify_concept(ctx.cds, concept)
    if found is not None:
        return found
    raise Unmappable(
        warning(
            f"{ctx.prefix}.{element}",
            f"{element} ({_describe(concept)}) is in no carepath medication class (opioid, benzodiazepine and "
            "naloxone value sets; non-opioid ingredient table)",
            "code-invalid",
        )
    )


@dataclass(frozen=True)
class _Medication:
    drug_class: str
    name: str | None
    active: bool
    started_at: str | None
    stopped_at: str | None
    mme_per_day: float | None
    status: str


def _optional_instant(ctx: Context, resource: Any, *candidates: str) -> str | None:
    try:
        return _first_instant(ctx, resource, *candidates)
    except Invalid as missing:
        if missing.issues[0].code == "required":
            return None
        raise


def _read_medication(resource: Any, ctx: Context) -> tuple[_Medication, list[Issue]]:
    notes: list[Issue] = []
    concept, element = _medication_concept(resource, ctx)
    drug_class, name = _drug_class(ctx, concept, element)
    if resource.get_resource_type() == "MedicationRequest":
        status = _status(ctx, resource, ("active", "completed", "stopped", "on-hold"))
        intent = str(resource.intent or "")
        if intent not in _REQUEST_INTENTS:
            raise Unmappable(
                warning(f"{ctx.prefix}.intent", f"intent {intent!r} is not a prescription", "business-rule")
            )
        active = status in ("active", "completed", "on-hold")
        started = _request_start(ctx, resource)
        stopped = None if active else _change_instant(ctx, resource)
        dosages = list(resource.dosageInstruction or [])
    else:
        status = _status(ctx, resource, ("active", "completed", "stopped"))
        active = status == "active"
        started = _first_instant(ctx, resource, "effectiveDateTime", "effectivePeriod.start")
        stopped = None if active else _optional_instant(ctx, resource, "effectivePeriod.end", "meta.lastUpdated")
        dosages = list(resource.dosage or [])
    mme_per_day: float | None = None
    if drug_class in ("opioid_ir", "opioid_er"):
        result = mme.compute(ctx.cds, name, dosages)
        mme_per_day = result.mme_per_day
        if mme_per_day is None:
            notes.append(
                warning(
                    f"{ctx.prefix}.{'dosageInstruction' if resource.get_resource_type() == 'MedicationRequest' else 'dosage'}",
                    f"opioid recorded without mme_per_day: {result.reason}",
                    "incomplete",
                )
            )
        else:
            notes.append(information(ctx.prefix, f"mme_per_day {mme_per_day} computed with the CDC 2022 factors"))
    return _Medication(drug_class, name, active, started, stopped, mme_per_day, status), notes


def _request_start(ctx: Context, resource: Any) -> str:
    for dosage in resource.dosageInstruction or []:
        bounds = getattr(getattr(getattr(dosage, "timing", None), "repeat", None), "boundsPeriod", None)
        if bounds is not None and bounds.start is not None:
            return _instant(ctx, "dosageInstruction.timing.repeat.boundsPeriod.start", bounds.start)
    return _first_instant(ctx, resource, "authoredOn")


def _change_instant(ctx: Context, resource: Any) -> str | None:
    for dosage in resource.dosageInstruction or []:
        bounds = getattr(getattr(getattr(dosage, "timing", None), "repeat", None), "boundsPeriod", None)
        if bounds is not None and bounds.end is not None:
            return _instant(ctx, "dosageInstruction.timing.repeat.boundsPeriod.end", bounds.end)
    return _optional_instant(ctx, resource, "meta.lastUpdated")


def _medication_data(med: _Medication, action: str, mme_per_day: float | None) -> dict[str, Any]:
    data: dict[str, Any] = {"drug_class": med.drug_class, "action": action}
    if mme_per_day is not None:
        data["mme_per_day"] = mme_per_day
    if med.name:
        data["name"] = med.name[:200]
    return data


def medication(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    med, notes = _read_medication(resource, ctx)
    state = {"drug_class": med.drug_class, "active": med.active, "mme_per_day": med.mme_per_day}
    mapped = Mapped(notes=notes, status=med.status, state=state)
    if med.drug_class == "naloxone":
        if previous is None:
            occurred = med.started_at
            assert occurred is not None
            mapped.updates.append(
                _update("opioid_monitoring", occurred, {"plan_documented": False, "naloxone_offered": True})
            )
        return mapped
    if previous is None:
        assert med.started_at is not None
        mapped.updates.append(_update("medication", med.started_at, _medication_data(med, "started", med.mme_per_day)))
        if not med.active:
            if med.stopped_at is None:
                raise Invalid(
                    [
                        error(
                            f"{ctx.prefix}.meta.lastUpdated",
                            "a stopped medication needs the instant it stopped",
                            "required",
                        )
                    ]
                )
            mapped.updates.append(_update("medication", med.stopped_at, _medication_data(med, "stopped", None)))
        return mapped
    if previous.get("drug_class") != med.drug_class:
        raise Invalid(
            [error(f"{ctx.prefix}.medication[x]", "a new version may not change the drug class", "business-rule")]
        )
    was_active = bool(previous.get("active"))
    if was_active and not med.active:
        if med.stopped_at is None:
            raise Invalid(
                [
                    error(
                        f"{ctx.prefix}.meta.lastUpdated",
                        "a status change to stopped needs the instant (meta.lastUpdated)",
                        "required",
                    )
                ]
            )
        mapped.updates.append(_update("medication", med.stopped_at, _medication_data(med, "stopped", None)))
    elif was_active and med.active and med.mme_per_day is not None and previous.get("mme_per_day") is not None:
        before, after = float(previous["mme_per_day"]), med.mme_per_day
        if after != before:
            when = _optional_instant(ctx, resource, "meta.lastUpdated")
            if when is None:
                raise Invalid(
                    [
                        error(
                            f"{ctx.prefix}.meta.lastUpdated",
                            "a dose change needs the instant (meta.lastUpdated)",
                            "required",
                        )
                    ]
                )
            action = "dose_increased" if after > before else "dose_decreased"
            mapped.updates.append(_update("medication", when, _medication_data(med, action, after)))
    elif not was_active and med.active:
        assert med.started_at is not None
        restart = _optional_instant(ctx, resource, "meta.lastUpdated") or med.started_at
        mapped.updates.append(_update("medication", restart, _medication_data(med, "started", med.mme_per_day)))
    if not mapped.updates:
        mapped.notes.append(information(ctx.prefix, "a new version with no change carepath records"))
    return mapped


# --- ServiceRequest / Encounter ------------------------------------------------------------------------------
def service_request(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    status = _status(ctx, resource, ("active", "completed"))
    intent = str(resource.intent or "")
    if intent not in _REQUEST_INTENTS:
        raise Unmappable(warning(f"{ctx.prefix}.intent", f"intent {intent!r} is not a referral", "business-rule"))
    kind, _coding = _lookup(ctx, codes.THERAPIES, resource.code, "code")
    occurred_at = _first_instant(ctx, resource, "authoredOn", "occurrenceDateTime", "occurrencePeriod.start")
    return Mapped([_update("therapy", occurred_at, {"kind": kind, "status": "referred"})], status=status)


def encounter(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    status = _status(ctx, resource, ("finished", "in-progress", "arrived"))
    hit = None
    for concept in resource.type or []:
        hit = hit or codes.first_match(codes.THERAPIES, concept)
    if hit is None and resource.serviceType is not None:
        hit = codes.first_match(codes.THERAPIES, resource.serviceType)
    if hit is None:
        concept = (resource.type or [None])[0] or resource.serviceType
        _lookup(ctx, codes.THERAPIES, concept, "type")
        raise AssertionError("unreachable")
    kind = hit[0]
    occurred_at = _first_instant(ctx, resource, "period.start")
    when = datetime.fromisoformat(occurred_at)
    therapy_status = "progress" if ctx.therapy_started(kind, when) else "started"
    return Mapped([_update("therapy", occurred_at, {"kind": kind, "status": therapy_status})], status=status)


# --- ImagingStudy / DiagnosticReport -------------------------------------------------------------------------
def _study_modality(study: Any) -> str | None:
    for coding in list(getattr(study, "modality", None) or []) + [
        getattr(series, "modality", None) for series in getattr(study, "series", None) or []
    ]:
        if coding is None:
            continue
        value = codes.MODALITIES.lookup(coding.system, coding.code)
        if value is not None:
            return str(value)
    return None


def imaging_study(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    if ctx.full_url in ctx.reported_studies or f"ImagingStudy/{resource.id}" in ctx.reported_studies:
        raise Unmappable(
            information(
                ctx.prefix, "recorded through the DiagnosticReport of this Bundle that reports on it", "informational"
            )
        )
    status = _status(ctx, resource, ("available",))
    modality = _study_modality(resource)
    if modality is None:
        raise Unmappable(
            warning(f"{ctx.prefix}.modality", "no modality carepath records (DICOM MR, CT, CR, DX)", "code-invalid")
        )
    occurred_at = _first_instant(ctx, resource, "started")
    return Mapped([_update("imaging", occurred_at, {"modality": modality, "findings": []})], status=status)


def diagnostic_report(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    status = _status(ctx, resource, ("final", "amended", "corrected", "appended"))
    modality = None
    for concept in resource.category or []:
        hit = codes.first_match(codes.IMAGING_REPORTS, concept)
        if hit is not None:
            modality = hit[0]
            break
    if modality is None:
        for reference in resource.imagingStudy or []:
            study = ctx.resolve(reference.reference) if reference.reference else None
            modality = _study_modality(study) if study is not None else None
            if modality:
                break
    if modality is None:
        raise Unmappable(
            warning(
                f"{ctx.prefix}.category",
                "not an imaging report carepath records: no v2-0074 NMR/CT/RX category and no ImagingStudy "
                "of this Bundle with a known modality",
                "code-invalid",
            )
        )
    findings: list[str] = []
    notes: list[Issue] = []
    for index, concept in enumerate(resource.conclusionCode or []):
        hit = codes.first_match(codes.IMAGING_FINDINGS, concept)
        if hit is None:
            notes.append(
                information(f"{ctx.prefix}.conclusionCode[{index}]", f"finding {_describe(concept)} not mapped")
            )
        elif hit[0] not in findings:
            findings.append(hit[0])
    occurred_at = _first_instant(ctx, resource, "effectiveDateTime", "effectivePeriod.start", "issued")
    return Mapped(
        [_update("imaging", occurred_at, {"modality": modality, "findings": findings})], notes=notes, status=status
    )


# --- Condition -------------------------------------------------------------------------------------------------
def _code_of(concept: Any) -> str | None:
    for coding in _codings(concept):
        if coding.code:
            return str(coding.code)
    return None


def condition(resource: Any, ctx: Context, previous: dict[str, Any] | None) -> Mapped:
    if previous is not None:
        return _new_version_note(ctx)
    verification = _code_of(getattr(resource, "verificationStatus", None))
    if verification in ("refuted", "entered-in-error"):
        raise Unmappable(
            warning(
                f"{ctx.prefix}.verificationStatus",
                f"verificationStatus {verification!r} is not recorded",
                "business-rule",
            )
        )
    (type_name, value), _coding = _lookup(ctx, codes.CONDITIONS, resource.code, "code")
    clinical = _code_of(getattr(resource, "clinicalStatus", None))
    occurred_at = _first_instant(ctx, resource, "onsetDateTime", "onsetPeriod.start", "recordedDate")
    if type_name == "neuro_exam":
        if clinical not in ("active", "recurrence", "relapse"):
            raise Unmappable(
                warning(f"{ctx.prefix}.clinicalStatus", "a red flag is recorded only while active", "business-rule")
            )
        return Mapped([_update("neuro_exam", occurred_at, dict(value))], status=clinical)
    # A risk stays a risk when resolved or in remission: a prior overdose is by definition in the past.
    return Mapped([_update("psychosocial", occurred_at, {"factors": [value]})], status=clinical)


MAPPERS: dict[str, Callable[[Any, Context, dict[str, Any] | None], Mapped]] = {
    "Procedure": procedure,
    "Observation": observation,
    "MedicationRequest": medication,
    "MedicationStatement": medication,
    "ServiceRequest": service_request,
    "Encounter": encounter,
    "ImagingStudy": imaging_study,
    "DiagnosticReport": diagnostic_report,
    "Condition": condition,
}
