"""One Bundle in: parse and validate each entry with fhir.resources (R4B), link patients, map resources,
validate the updates as the native routes do, and record them with their outbox event in the caller's unit
of work (which the route commits). A transaction stores nothing unless every entry is valid; a batch stores
its valid entries; a Bundle in which nothing maps is refused (422)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlmodel import col

from services.intake import handlers
from services.intake.fhir import linking, mapping
from services.intake.fhir.outcome import Issue, error, fhir_path, information, operation_outcome, warning
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.tables import FhirResourceLink, PatientUpdate
from shared.db.uow import UnitOfWork
from shared.fhir.terminology import OpioidCds
from shared.updates import UpdateIn
from shared.web import EARLIEST, LATEST

MAX_ENTRIES = 500
_UPDATE = TypeAdapter(UpdateIn)


@dataclass
class Entry:
    index: int
    prefix: str
    full_url: str | None
    raw: Any
    resource: Any = None
    resource_type: str | None = None
    issues: list[Issue] = field(default_factory=list)
    outcome: str = "pending"  # pending | invalid | unmappable | duplicate | recorded | patient
    patient_id: str | None = None
    updates: list[Any] = field(default_factory=list)  # validated UpdateIn models
    update_ids: list[str] = field(default_factory=list)
    mapped: mapping.Mapped | None = None
    identity: tuple[str, str | None, str] | None = None


@dataclass
class Result:
    status_code: int
    body: dict[str, Any]


class BundleRefused(Exception):
    """The Bundle itself is not acceptable (422 with an OperationOutcome)."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("bundle refused")
        self.issues = issues


def _digest(raw: Any) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _shell(document: Any) -> tuple[str, list[Any]]:
    if not isinstance(document, dict):
        raise BundleRefused([error("Bundle", "the body must be a FHIR Bundle (a JSON object)", "structure")])
    if document.get("resourceType") != "Bundle":
        given = document.get("resourceType")
        raise BundleRefused(
            [error("resourceType", f"resourceType must be Bundle, not {str(given)[:40]!r}", "structure")]
        )
    entries = document.get("entry") or []
    shell = {key: value for key, value in document.items() if key != "entry"}
    if isinstance(entries, list):
        shell["entry"] = [
            {k: v for k, v in item.items() if k != "resource"} if isinstance(item, dict) else item for item in entries
        ]
    try:
        bundle = Bundle.model_validate(shell)
    except ValidationError as invalid:
        raise BundleRefused(_validation_issues("Bundle", invalid)) from None
    if bundle.type not in ("transaction", "batch"):
        raise BundleRefused([error("Bundle.type", "Bundle.type must be transaction or batch", "value")])
    if not entries:
        raise BundleRefused([error("Bundle.entry", "the Bundle has no entries", "required")])
    if len(entries) > MAX_ENTRIES:
        raise BundleRefused([error("Bundle.entry", f"at most {MAX_ENTRIES} entries", "too-costly")])
    return str(bundle.type), entries


def _validation_issues(prefix: str, invalid: ValidationError) -> list[Issue]:
    issues = []
    for item in invalid.errors():
        loc = tuple(item.get("loc", ()))
        message = str(item.get("msg", "invalid"))
        kind = "required" if item.get("type") == "missing" else "value"
        if item.get("type") == "extra_forbidden":
            kind, message = "structure", "unknown element"
        issues.append(error(fhir_path(prefix, loc), message, kind))
    return issues


def _parse(entries: list[Any]) -> list[Entry]:
    parsed: list[Entry] = []
    for index, item in enumerate(entries):
        prefix = f"Bundle.entry[{index}].resource"
        raw = item.get("resource") if isinstance(item, dict) else None
        entry = Entry(index, prefix, item.get("fullUrl") if isinstance(item, dict) else None, raw)
        parsed.append(entry)
        if not isinstance(raw, dict):
            entry.issues.append(error(prefix, "an entry needs a resource", "required"))
            entry.outcome = "invalid"
            continue
        resource_type = raw.get("resourceType")
        entry.resource_type = resource_type if isinstance(resource_type, str) else None
        if entry.resource_type not in (*mapping.SUPPORTED, "Patient", "Medication"):
            try:
                get_fhir_model_class(str(resource_type))
            except (ValueError, KeyError, AttributeError):
                entry.issues.append(
                    error(
                        f"{prefix}.resourceType",
                        f"{str(resource_type)[:40]!r} is not a FHIR resource type",
                        "structure",
                    )
                )
                entry.outcome = "invalid"
                continue
            entry.issues.append(warning(prefix, f"{resource_type} is not a resource carepath records"))
            entry.outcome = "unmappable"
            continue
        try:
            entry.resource = get_fhir_model_class(str(resource_type)).model_validate(raw)
        except ValidationError as invalid:
            entry.issues.extend(_validation_issues(prefix, invalid))
            entry.outcome = "invalid"
    return parsed


def _reference_keys(entry: Entry) -> list[str]:
    """The references by which other entries may point at this one."""
    keys = [entry.full_url] if entry.full_url else []
    if entry.resource is not None and getattr(entry.resource, "id", None):
        keys.append(f"{entry.resource_type}/{entry.resource.id}")
    return keys


def _patient_keys(patient: Any) -> linking.PatientKeys:
    identifiers = [key for key in (linking.identifier_key(i) for i in patient.identifier or []) if key]
    return linking.PatientKeys(identifiers, patient.id)


def _subject(entry: Entry, by_reference: dict[str, Entry]) -> linking.PatientKeys:
    resource = entry.resource
    reference = getattr(resource, "subject", None)
    if reference is None:
        raise mapping.Invalid([error(f"{entry.prefix}.subject", "subject is required: the Patient", "required")])
    target = reference.reference
    if target:
        patient_entry = by_reference.get(target)
        if (
            patient_entry is not None
            and patient_entry.resource_type == "Patient"
            and patient_entry.resource is not None
        ):
            return _patient_keys(patient_entry.resource)
        if target.startswith("Patient/") and len(target) > len("Patient/"):
            return linking.PatientKeys([], target.removeprefix("Patient/").split("/_history/")[0])
        raise mapping.Invalid(
            [
                error(
                    f"{entry.prefix}.subject.reference",
                    "subject must reference a Patient (Patient/<id> or a Patient entry)",
                    "value",
                )
            ]
        )
    key = linking.identifier_key(reference.identifier) if reference.identifier is not None else None
    if key:
        return linking.PatientKeys([key], None)
    raise mapping.Invalid([error(f"{entry.prefix}.subject", "subject needs a reference or an identifier", "required")])


def _check_update(entry: Entry, candidate: dict[str, Any]) -> Any:
    try:
        update = _UPDATE.validate_python(candidate)
    except ValidationError as invalid:
        issues = []
        for item in invalid.errors():
            loc = ".".join(str(p) for p in item.get("loc", ()) if not str(p).startswith("function-"))
            issues.append(
                error(
                    entry.prefix,
                    f"maps to a {candidate['type']} update that is refused at {loc}: {item.get('msg')}",
                    "value",
                )
            )
        raise mapping.Invalid(issues) from None
    if not EARLIEST <= update.occurred_at < LATEST:
        raise mapping.Invalid(
            [error(entry.prefix, f"the instant must be between {EARLIEST.year} and {LATEST.year - 1}", "value")]
        )
    return update


class _TherapyStarts:
    """Whether a therapy of a kind started at or before an instant: stored updates, or earlier in this Bundle."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.pending: dict[str, list[tuple[str, datetime]]] = {}

    def checker(self, patient_id: str) -> Any:
        def started(kind: str, when: datetime) -> bool:
            if any(k == kind and at <= when for k, at in self.pending.get(patient_id, [])):
                return True
            query = select(col(PatientUpdate.data), col(PatientUpdate.occurred_at)).where(
                col(PatientUpdate.patient_id) == patient_id,
                col(PatientUpdate.type) == "therapy",
                col(PatientUpdate.occurred_at) <= when,
            )
            return any(
                data.get("kind") == kind and data.get("status") == "started"
                for data, _at in self.uow.session.execute(query)
            )

        return started

    def add(self, patient_id: str, updates: list[Any]) -> None:
        for update in updates:
            if update.type == "therapy" and update.data.status == "started":
                self.pending.setdefault(patient_id, []).append((update.data.kind, update.occurred_at))


def process(uow: UnitOfWork, principal: Principal, cds: OpioidCds, document: Any) -> Result:
    """Everything but the commit; the caller commits when status_code is 200."""
    bundle_type, raw_entries = _shell(document)
    entries = _parse(raw_entries)
    by_reference = {key: entry for entry in entries if entry.outcome == "pending" for key in _reference_keys(entry)}
    reported_studies = {
        study.reference
        for entry in entries
        if entry.resource_type == "DiagnosticReport" and entry.resource is not None
        for study in entry.resource.imagingStudy or []
        if study.reference
    }
    starts = _TherapyStarts(uow)
    patients: dict[tuple[tuple[str, str], ...], str] = {}
    seen: dict[tuple[str, str, str], int] = {}

    for entry in entries:
        if entry.outcome != "pending":
            continue
        if entry.resource_type in ("Patient", "Medication"):
            entry.outcome = "patient" if entry.resource_type == "Patient" else "context"
            continue
        try:
            keys = _subject(entry, by_reference)
            pairs = tuple(keys.keys())
            if pairs not in patients:
                patients[pairs] = linking.link_patient(uow, principal, keys)[0]
            entry.patient_id = patients[pairs]
            identity = linking.resource_identity(entry.resource, _digest(entry.raw))
            entry.identity = identity
            same_in_bundle = (str(entry.resource_type), identity[0], identity[2])
            if same_in_bundle in seen:
                entry.outcome = "duplicate"
                entry.issues.append(
                    information(entry.prefix, f"the same resource version as entry {seen[same_in_bundle]}", "duplicate")
                )
                continue
            seen[same_in_bundle] = entry.index
            earlier = linking.recorded_versions(uow, principal.org, str(entry.resource_type), identity[0], identity[1])
            if any(link.patient_id != entry.patient_id for link in earlier):
                issue = error(
                    f"{entry.prefix}.subject", "this resource is recorded for another patient", "business-rule"
                )
                raise mapping.Invalid([issue])
            if any(link.version == identity[2] for link in earlier):
                match = next(link for link in earlier if link.version == identity[2])
                entry.outcome = "duplicate"
                entry.update_ids = list(match.update_ids)
                entry.issues.append(information(entry.prefix, "already recorded: stored once", "duplicate"))
                continue
            previous = earlier[-1].state if earlier else None
            context = mapping.Context(
                cds=cds,
                prefix=entry.prefix,
                resolve=lambda ref: by_reference[ref].resource if ref in by_reference else None,
                therapy_started=starts.checker(entry.patient_id),
                reported_studies=reported_studies,
                full_url=entry.full_url,
            )
            entry.mapped = mapping.MAPPERS[str(entry.resource_type)](entry.resource, context, previous)
            entry.issues.extend(entry.mapped.notes)
            entry.updates = [_check_update(entry, candidate) for candidate in entry.mapped.updates]
            starts.add(entry.patient_id, entry.updates)
            entry.outcome = "recorded"
        except mapping.Invalid as invalid:
            entry.outcome = "invalid"
            entry.issues.extend(invalid.issues)
        except mapping.Unmappable as unmappable:
            entry.outcome = "unmappable"
            entry.issues.append(unmappable.issue)

    failed = [entry for entry in entries if entry.outcome == "invalid"]
    mapped = [entry for entry in entries if entry.outcome in ("recorded", "duplicate")]
    if (bundle_type == "transaction" and failed) or not mapped:
        uow.rollback()
        issues = [issue for entry in entries for issue in entry.issues]
        if not mapped and not failed:
            issues.append(error("Bundle.entry", "no entry of this Bundle maps to a carepath update", "not-supported"))
        # In a refused Bundle every problem is an error and nothing was stored (notes about it are moot).
        refused = [Issue("error", i.code, i.diagnostics, i.expression) for i in issues if i.severity != "information"]
        return Result(422, operation_outcome(refused))
    for entry in entries:
        if entry.outcome == "patient":
            linked = patients.get(tuple(_patient_keys(entry.resource).keys()))
            if linked is not None:
                entry.issues.append(information(entry.prefix, f"linked to carepath patient {linked}"))
    _record(uow, principal, entries)
    return Result(200, _response(bundle_type, entries))


def _record(uow: UnitOfWork, principal: Principal, entries: list[Entry]) -> None:
    by_patient: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.outcome == "recorded" and entry.patient_id is not None:
            by_patient.setdefault(entry.patient_id, []).append(entry)
    now = utcnow()
    for patient_id, group in by_patient.items():
        updates = [update for entry in group for update in entry.updates]
        ids: list[str] = []
        if updates:
            ids, _event_id = handlers.record_updates(uow, principal, patient_id, updates)
        position = 0
        for entry in group:
            entry.update_ids = ids[position : position + len(entry.updates)]
            position += len(entry.updates)
            assert entry.identity is not None and entry.mapped is not None
            identity, identifier, version = entry.identity
            uow.session.add(
                FhirResourceLink(
                    org=principal.org,
                    patient_id=patient_id,
                    resource_type=str(entry.resource_type),
                    identity=identity,
                    identifier=identifier,
                    version=version,
                    status=entry.mapped.status,
                    state=entry.mapped.state,
                    update_ids=entry.update_ids,
                    received_at=now,
                )
            )
            if entry.update_ids:
                entry.issues.append(information(entry.prefix, "recorded as update(s) " + ", ".join(entry.update_ids)))
    uow.session.flush()


_STATUS = {
    "recorded": "201 Created",
    "duplicate": "200 OK",
    "patient": "200 OK",
    "context": "200 OK",
    "unmappable": "422 Unprocessable Entity",
    "invalid": "400 Bad Request",
}


def _response(bundle_type: str, entries: list[Entry]) -> dict[str, Any]:
    items = []
    for entry in entries:
        response: dict[str, Any] = {"status": _STATUS.get(entry.outcome, "500 Internal Server Error")}
        if entry.outcome == "recorded" and not entry.update_ids:
            response["status"] = "200 OK"  # a new version with nothing new to record
        if entry.issues:
            response["outcome"] = operation_outcome(entry.issues)
        if entry.resource is not None and getattr(entry.resource, "id", None):
            response["location"] = f"{entry.resource_type}/{entry.resource.id}"
        items.append({"fullUrl": entry.full_url, "response": response} if entry.full_url else {"response": response})
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": f"{bundle_type}-response", "entry": items})
    result: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return result
