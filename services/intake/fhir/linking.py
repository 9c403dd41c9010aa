"""Which carepath patient a FHIR Patient is, and which resource versions were already recorded.

A FHIR Patient is known by its identifiers (system|value) and its id, per organisation. The first sight of
one creates the carepath patient in the caller's organisation and its links; a later Bundle that names the
same identifier or id (or a Patient with a new identifier besides a known one) reaches the same patient.
Another organisation never sees it: every lookup is scoped to the caller's organisation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlmodel import col

from services.intake import handlers
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.tables import FhirPatientLink, FhirResourceLink
from shared.db.uow import UnitOfWork


@dataclass
class PatientKeys:
    """What a Bundle says about one patient: identifiers as "system|value" and/or its FHIR id."""

    identifiers: list[str] = field(default_factory=list)
    fhir_id: str | None = None

    def keys(self) -> list[tuple[str, str]]:
        found = [("identifier", key) for key in self.identifiers]
        if self.fhir_id:
            found.append(("id", self.fhir_id))
        return found


def identifier_key(identifier: Any) -> str | None:
    system = getattr(identifier, "system", None)
    value = getattr(identifier, "value", None)
    if not value:
        return None
    return f"{system or ''}|{value}"[:500]


def _external_id(kind: str, key: str) -> str:
    """The carepath external_id of a patient first seen through FHIR: stable for its first key, and never
    one a native client would choose (prefix fhir:). Long keys are hashed to fit."""
    candidate = f"fhir:{kind}:{key}"
    if len(candidate) <= 200 and candidate.strip() == candidate:
        return candidate
    return "fhir:" + hashlib.sha256(candidate.encode()).hexdigest()


def link_patient(uow: UnitOfWork, principal: Principal, keys: PatientKeys) -> tuple[str, bool]:
    """The carepath patient id for these keys (created on first sight), and whether it was created now."""
    pairs = keys.keys()
    if not pairs:
        raise ValueError("a patient needs an identifier or an id")
    query = select(FhirPatientLink).where(
        col(FhirPatientLink.org) == principal.org,
        or_(*[(col(FhirPatientLink.kind) == kind) & (col(FhirPatientLink.key) == key) for kind, key in pairs]),
    )
    links = list(uow.session.execute(query).scalars())
    # An identifier outranks an id (ids are only unique per source server).
    links.sort(key=lambda link: (link.kind != "identifier", pairs.index((link.kind, link.key))))
    created = False
    if links:
        patient_id = links[0].patient_id
    else:
        kind, key = pairs[0]
        try:
            patient_id = handlers.create_patient(uow, principal, _external_id(kind, key)).id
            created = True
        except handlers.DuplicatePatient as duplicate:  # its links were lost: relink to it
            patient_id = duplicate.existing_id
    known = {(link.kind, link.key) for link in links}
    for kind, key in pairs:
        if (kind, key) not in known:
            uow.session.add(
                FhirPatientLink(org=principal.org, kind=kind, key=key, patient_id=patient_id, created_at=utcnow())
            )
    uow.session.flush()
    return patient_id, created


def resource_identity(resource: Any, content_digest: str) -> tuple[str, str | None, str]:
    """(identity, identifier, version): "id:<id>" when the resource has an id, else its first identifier,
    else a digest of its content (an exact re-send is then the same resource)."""
    identifiers = [key for key in (identifier_key(i) for i in getattr(resource, "identifier", None) or []) if key]
    first_identifier = identifiers[0] if identifiers else None
    if getattr(resource, "id", None):
        identity = f"id:{resource.id}"
    elif first_identifier:
        identity = f"identifier:{first_identifier}"
    else:
        identity = f"digest:{content_digest}"
    version = str(getattr(getattr(resource, "meta", None), "versionId", None) or "")
    return identity[:600], first_identifier, version[:64]


def recorded_versions(
    uow: UnitOfWork, org: str, resource_type: str, identity: str, identifier: str | None
) -> list[FhirResourceLink]:
    """Earlier versions of the same resource (same id, or same identifier), oldest first."""
    same = col(FhirResourceLink.identity) == identity
    if identifier is not None:
        same = or_(same, col(FhirResourceLink.identifier) == identifier)
    query = (
        select(FhirResourceLink)
        .where(col(FhirResourceLink.org) == org, col(FhirResourceLink.resource_type) == resource_type, same)
        .order_by(col(FhirResourceLink.received_at))
    )
    return list(uow.session.execute(query).scalars())
