"""A CDS Hooks request's FHIR content → hypothetical engine facts: the draft medication orders
(`context.draftOrders`) and the active medications of the prefetch (or of the EHR's FHIR server).

Untidy real requests are accepted: prefetch values may be absent, `null`, a resource, a Bundle, or a
Bundle entry (`{"response": …, "resource": …}`); draft order ids may collide with prefetch ids (they are
different orders: each is its own fact). A resource that does not parse or whose medication carepath does
not know is skipped, never an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from pydantic import ValidationError

from services.pathway.rules import Fact
from shared.fhir import medications, mme
from shared.fhir.terminology import OpioidCds

OPIOIDS = ("opioid_ir", "opioid_er")
DRAFT_STATUSES = ("draft", "active", "on-hold")
ACTIVE_STATUSES = ("active", "on-hold")
ORDER_INTENTS = ("proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order")


def resources_of(value: Any) -> list[dict[str, Any]]:
    """The FHIR resources in a prefetch value or draftOrders: a resource, a Bundle (its entries' resources),
    a Bundle entry wrapper, or a list of any of these; None and anything else give nothing."""
    if isinstance(value, list):
        return [r for item in value for r in resources_of(item)]
    if not isinstance(value, dict):
        return []
    if "resourceType" not in value and isinstance(value.get("resource"), dict):
        return resources_of(value["resource"])  # a Bundle entry ({"response": …, "resource": …})
    if value.get("resourceType") == "Bundle":
        return [r for entry in value.get("entry") or [] for r in resources_of(entry)]
    return [value] if isinstance(value.get("resourceType"), str) else []


@dataclass
class Medications:
    facts: list[Fact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # codes and reasons only, never patient values


def _instant(value: Any, now: datetime) -> datetime:
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        when = datetime.combine(value, time(), tzinfo=UTC)
    else:
        return now
    return min(when.astimezone(UTC), now)


def _started(resource: Any, now: datetime) -> datetime:
    for dosage in getattr(resource, "dosageInstruction", None) or getattr(resource, "dosage", None) or []:
        bounds = getattr(getattr(getattr(dosage, "timing", None), "repeat", None), "boundsPeriod", None)
        if bounds is not None and bounds.start is not None:
            return _instant(bounds.start, now)
    for name in ("authoredOn", "effectiveDateTime"):
        if getattr(resource, name, None) is not None:
            return _instant(getattr(resource, name), now)
    period = getattr(resource, "effectivePeriod", None)
    return _instant(getattr(period, "start", None), now)


def _parse(raw: dict[str, Any]) -> Any | None:
    kind = raw.get("resourceType")
    model: Any = {"MedicationRequest": MedicationRequest, "MedicationStatement": MedicationStatement}.get(str(kind))
    if model is None:
        return None
    if "subject" not in raw:
        raw = {**raw, "subject": {"reference": "Patient/unknown"}}  # required by FHIR; not needed here
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _fact(
    cds: OpioidCds, resource: Any, fact_id: str, occurred_at: datetime, out: Medications
) -> tuple[str, Fact] | None:
    concept = getattr(resource, "medicationCodeableConcept", None)
    found = medications.classify_concept(cds, concept) if concept is not None else None
    if found is None:
        out.notes.append(f"{fact_id}: medication not in a carepath class")
        return None
    drug_class, name = found
    if drug_class == "naloxone":
        data: dict[str, Any] = {"plan_documented": False, "naloxone_offered": True}
        return drug_class, Fact(id=fact_id, type="opioid_monitoring", occurred_at=occurred_at, data=data)
    data = {"drug_class": drug_class, "action": "started"}
    if name:
        data["name"] = name[:200]
    if drug_class in OPIOIDS:
        dosages = list(getattr(resource, "dosageInstruction", None) or getattr(resource, "dosage", None) or [])
        result = mme.compute(cds, name, dosages)
        if result.mme_per_day is not None:
            data["mme_per_day"] = result.mme_per_day
        else:
            out.notes.append(f"{fact_id}: no MME ({result.reason})")
    return drug_class, Fact(id=fact_id, type="medication", occurred_at=occurred_at, data=data)


def _key(raw: dict[str, Any]) -> tuple[Any, ...]:
    codings = ((raw.get("medicationCodeableConcept") or {}).get("coding")) or []
    return (raw.get("resourceType"), raw.get("id"), tuple(sorted(str(c.get("code")) for c in codings)))


def draft_facts(cds: OpioidCds, draft_orders: Any, now: datetime, prefix: str = "cds-draft") -> Medications:
    """The draft orders as medications started now (naloxone: offered now)."""
    out = Medications()
    for index, raw in enumerate(resources_of(draft_orders)):
        resource = _parse(raw)
        if resource is None or getattr(resource, "status", None) not in DRAFT_STATUSES:
            continue
        if raw.get("resourceType") == "MedicationRequest" and resource.intent not in ORDER_INTENTS:
            continue
        made = _fact(cds, resource, f"{prefix}-{index}", now, out)
        if made is not None:
            out.facts.append(made[1])
    return out


def active_facts(
    cds: OpioidCds, resources: list[dict[str, Any]], now: datetime, skip: set[tuple[Any, ...]], known_ids: set[str]
) -> Medications:
    """Active medications (MedicationRequest/MedicationStatement) as courses started when they were ordered.
    `skip`: the draft orders themselves (same id and code), `known_ids`: resources carepath already recorded."""
    out = Medications()
    for index, raw in enumerate(resources):
        if _key(raw) in skip or (raw.get("id") and str(raw.get("id")) in known_ids):
            continue
        resource = _parse(raw)
        if resource is None or getattr(resource, "status", None) not in ACTIVE_STATUSES:
            continue
        if raw.get("resourceType") == "MedicationRequest" and resource.intent not in ORDER_INTENTS:
            continue
        made = _fact(cds, resource, f"cds-active-{index}", _started(resource, now), out)
        if made is not None:
            out.facts.append(made[1])
    return out


def draft_keys(draft_orders: Any) -> set[tuple[Any, ...]]:
    return {_key(raw) for raw in resources_of(draft_orders)}
