"""GET /fhir/r4/metadata: what carepath accepts, as a CapabilityStatement (fhir.resources)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from services.intake.fhir import mapping
from shared.fhir import codes

_DOCUMENTATION = {
    "Patient": "linked by identifier (system|value) or id to a carepath patient of the caller's organisation",
    "Procedure": "index surgery (surgery) or procedure (interventional, repeat surgery); code tables: procedures",
    "Observation": "pain intensity (+ PEG component, bodySite → distribution) → pain_assessment; neuro findings → neuro_exam",
    "MedicationRequest": "opioid IR/ER (with mme_per_day where computable), benzodiazepine, naloxone, non-opioid classes → medication; status changes → stopped",
    "MedicationStatement": "as MedicationRequest",
    "Medication": "only as the target of medicationReference within the Bundle",
    "ServiceRequest": "therapy referral (physical therapy, psychological therapy) → therapy referred",
    "Encounter": "therapy attendance → therapy started (first) / progress",
    "ImagingStudy": "modality (DICOM) → imaging",
    "DiagnosticReport": "imaging report (category or referenced ImagingStudy) with coded findings → imaging",
    "Condition": "cauda equina syndrome → neuro_exam red flag; substance use disorder / prior overdose → psychosocial",
}


def capability_statement(software_version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {
            "type": "CarePlan",
            "interaction": [{"code": "search-type"}],
            "searchParam": [{"name": "patient", "type": "reference"}],
            "documentation": "the newest stored pathway assessment; activities are its deadlines",
        }
    ]
    for name in ("Patient", *mapping.SUPPORTED, "Medication"):
        resources.append(
            {"type": name, "documentation": "accepted in transaction/batch Bundles: " + _DOCUMENTATION[name]}
        )
    tables = "; ".join(f"{t.name}: {t.used_for}" for t in codes.ALL_TABLES)
    model = CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-01",
            "kind": "instance",
            "software": {"name": "carepath", "version": software_version},
            "implementation": {"description": "carepath intake FHIR R4 endpoint"},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "application/json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Code tables: " + tables,
                    "resource": resources,
                    "interaction": [{"code": "transaction"}, {"code": "batch"}],
                }
            ],
        }
    )
    result: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return result
