"""The CDS services: discovery, patient-view (the stored assessment and due reminders), order-sign and
order-select (a what-if of the draft orders, stored nowhere), and feedback (recorded; a reminder card's
override snoozes or dismisses the reminder)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select
from sqlmodel import col

from services.pathway.cds import cards, clients, orders
from services.pathway.handler import latest_assessment
from services.pathway.mapping import load_facts, org_params
from services.pathway.rules import evaluate
from shared import ssrf
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.tables import (
    CdsFeedback,
    FhirPatientLink,
    FhirResourceLink,
    Patient,
    Reminder,
)
from shared.db.uow import UnitOfWork
from shared.fhir import terminology
from shared.settings import get_settings

log = logging.getLogger("carepath.cds")

PATIENT_VIEW = "carepath-patient-view"
ORDER_SIGN = "carepath-order-sign"
ORDER_SELECT = "carepath-order-select"
FHIR_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
MAX_FETCHED = 200

_MEDICATIONS = "MedicationRequest?patient={{context.patientId}}&status=active"
SERVICES: dict[str, dict[str, Any]] = {
    PATIENT_VIEW: {
        "hook": "patient-view",
        "title": "carepath: low back pain after laminectomy",
        "description": "The patient's treatment pathway stage, its flags with their recommendations, and the "
        "due or overdue reminders of the care coordination.",
        "id": PATIENT_VIEW,
        "prefetch": {"patient": "Patient/{{context.patientId}}"},
    },
    ORDER_SIGN: {
        "hook": "order-sign",
        "title": "carepath: pathway check of medication orders",
        "description": "What the draft medication orders would newly raise on the patient's low back pain "
        "pathway (opioid safety: naloxone, benzodiazepines, non-opioids first, extended-release opioids, MME).",
        "id": ORDER_SIGN,
        "prefetch": {"patient": "Patient/{{context.patientId}}", "medications": _MEDICATIONS},
    },
    ORDER_SELECT: {
        "hook": "order-select",
        "title": "carepath: pathway check of selected medication orders",
        "description": "As carepath-order-sign, while orders are being selected.",
        "id": ORDER_SELECT,
        "prefetch": {"patient": "Patient/{{context.patientId}}", "medications": _MEDICATIONS},
    },
}


def discovery() -> dict[str, Any]:
    return {"services": list(SERVICES.values())}


def fhir_patient_id(context: dict[str, Any]) -> str | None:
    """`context.patientId`: a bare id, or (as real requests send it) a reference `Patient/<id>`."""
    value = context.get("patientId")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if "/" in value:
        kind, _, rest = value.rpartition("/")
        if kind.rsplit("/", 1)[-1] != "Patient" or not rest:
            return None
        value = rest
    return value[:200]


def _identifier_keys(prefetch_resources: list[dict[str, Any]], fhir_id: str) -> list[str]:
    keys = []
    for resource in prefetch_resources:
        if resource.get("resourceType") == "Patient" and resource.get("id") == fhir_id:
            for identifier in resource.get("identifier") or []:
                if isinstance(identifier, dict) and identifier.get("value"):
                    keys.append(f"{identifier.get('system') or ''}|{identifier['value']}"[:500])
    return keys


def find_patient(uow: UnitOfWork, org: str, fhir_id: str, identifier_keys: list[str]) -> Patient | None:
    """The caller's organisation's patient by external_id, or by a linked FHIR Patient id or identifier."""
    by_external = select(Patient).where(col(Patient.org) == org, col(Patient.external_id) == fhir_id)
    patient = uow.session.execute(by_external).scalar_one_or_none()
    if patient is not None:
        return patient
    conditions = [(col(FhirPatientLink.kind) == "id") & (col(FhirPatientLink.key) == fhir_id)]
    conditions += [
        (col(FhirPatientLink.kind) == "identifier") & (col(FhirPatientLink.key) == k) for k in identifier_keys
    ]
    links = uow.session.execute(
        select(FhirPatientLink).where(col(FhirPatientLink.org) == org, or_(*conditions))
    ).scalars()
    ranked = sorted(links, key=lambda link: link.kind != "identifier")
    if not ranked:
        return None
    found: Patient | None = uow.session.get(Patient, ranked[0].patient_id)
    return found if found is not None and found.org == org else None


def _prefetch_resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    prefetch = request.get("prefetch")
    if not isinstance(prefetch, dict):
        return []
    return [resource for value in prefetch.values() for resource in orders.resources_of(value)]


def _has_medications(request: dict[str, Any], resources: list[dict[str, Any]]) -> bool:
    prefetch = request.get("prefetch")
    if isinstance(prefetch, dict) and prefetch.get("medications") is not None:
        return True
    return any(r.get("resourceType") in ("MedicationRequest", "MedicationStatement") for r in resources)


def fetch_active_medications(
    request: dict[str, Any], fhir_id: str, allowed: list[str], *, allow_private: bool = False
) -> list[dict[str, Any]]:
    """MedicationRequest?patient=…&status=active from the request's fhirServer with its fhirAuthorization;
    nothing (logged without patient data) when that fails or times out.

    SSRF: only a server on the calling CDS client's allow-list (`carepath cds-client register
    --fhir-server`) is asked; any other `fhirServer` is refused without a connection. The connection goes
    through the outbound address filter (shared/ssrf.py: public addresses only, checked on the addresses
    really connected to), except for an address written in the allow-list itself (an IP literal: the
    operator named that very address)."""
    server, authorization = request.get("fhirServer"), request.get("fhirAuthorization")
    if not isinstance(server, str) or not isinstance(authorization, dict):
        return []
    token = authorization.get("access_token")
    if not isinstance(token, str) or not server.startswith(("http://", "https://")):
        return []
    base = clients.normalise_fhir_server(server)
    if base not in allowed:
        log.warning("cds: fhirServer refused: not on the client's allow-list (no fetch)")
        return []
    host = urlsplit(base).hostname or ""
    listed_address = _is_ip_literal(host)
    url = base + "/MedicationRequest"
    try:
        transport = ssrf.PinnedTransport(allow_private=allow_private or listed_address)
        with httpx.Client(timeout=FHIR_TIMEOUT, follow_redirects=False, transport=transport, trust_env=False) as client:
            response = client.get(
                url,
                params={"patient": fhir_id, "status": "active"},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            )
        response.raise_for_status()
        bundle = response.json()
    except (httpx.HTTPError, ValueError) as problem:
        log.warning("cds: FHIR server fetch failed (%s)", type(problem).__name__)
        return []
    return orders.resources_of(bundle)[:MAX_FETCHED]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass
class Matched:
    patient: Patient
    fhir_id: str


def _match(
    uow: UnitOfWork,
    principal: Principal,
    request: dict[str, Any],
    resources: list[dict[str, Any]],
    seen: list[str] | None,
) -> Matched | None:
    """The carepath patient the request is about (its id appended to `seen`, for the audit row)."""
    context = request.get("context")
    fhir_id = fhir_patient_id(context) if isinstance(context, dict) else None
    if fhir_id is None:
        return None
    patient = find_patient(uow, principal.org, fhir_id, _identifier_keys(resources, fhir_id))
    if patient is None:
        return None
    if seen is not None:
        seen.append(patient.id)
    return Matched(patient, fhir_id)


def patient_view(principal: Principal, request: dict[str, Any], seen: list[str] | None = None) -> dict[str, Any]:
    now = utcnow()
    resources = _prefetch_resources(request)
    with UnitOfWork(read_only=True) as uow:
        matched = _match(uow, principal, request, resources, seen)
        if matched is None:
            return {"cards": []}
        patient = matched.patient
        stored = latest_assessment(uow, patient.id)
        reminders = list(
            uow.session.execute(
                select(Reminder)
                .where(
                    col(Reminder.patient_id) == patient.id,
                    col(Reminder.org) == principal.org,
                    or_(
                        col(Reminder.status).in_(("due", "acknowledged")),
                        (col(Reminder.status) == "scheduled") & (col(Reminder.due_at) <= now),
                    ),
                )
                .order_by(col(Reminder.due_at))
            ).scalars()
        )
        result: list[dict[str, Any]] = []
        if stored is not None:
            body = stored.body
            rule_set = str(body.get("rule_set_version"))
            result.append(cards.stage_card(rule_set, body))
            recommendations = {r["code"]: r for r in body.get("recommendations") or []}
            flags = sorted(
                body.get("flags") or [], key=lambda f: ("critical", "warning", "info").index(cards.indicator(f["code"]))
            )
            result += [cards.flag_card(rule_set, flag, recommendations.get(flag["code"])) for flag in flags]
        result += [cards.reminder_card(reminder, now) for reminder in reminders]
    return {"cards": result}


def _split_selections(
    request: dict[str, Any], drafts: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """order-select's `context.selections` ("MedicationRequest/<id>"): (selected, the other drafts). Without
    selections (order-sign), every draft is selected."""
    context = request.get("context") or {}
    selections = context.get("selections") if request.get("hook") == "order-select" else None
    if not isinstance(selections, list) or not selections:
        return drafts, []
    chosen = {str(s) for s in selections}
    selected = [d for d in drafts if f"{d.get('resourceType')}/{d.get('id')}" in chosen]
    return selected, [d for d in drafts if d not in selected]


def order_review(principal: Principal, request: dict[str, Any], seen: list[str] | None = None) -> dict[str, Any]:
    """One card per flag the draft orders would newly raise: evaluated once without and once with them."""
    now = utcnow()
    cds = terminology.configured()
    context = request.get("context") if isinstance(request.get("context"), dict) else {}
    assert isinstance(context, dict)
    draft_orders = context.get("draftOrders")
    resources = _prefetch_resources(request)
    with UnitOfWork(read_only=True) as uow:
        matched = _match(uow, principal, request, resources, seen)
        if matched is None:
            return {"cards": []}
        patient = matched.patient
        stored = load_facts(uow, patient.id)
        params = org_params(uow, principal.org)
        recorded = uow.session.execute(
            select(col(FhirResourceLink.identity)).where(
                col(FhirResourceLink.patient_id) == patient.id,
                col(FhirResourceLink.resource_type).in_(("MedicationRequest", "MedicationStatement")),
            )
        ).scalars()
        known_ids = {identity.removeprefix("id:") for identity in recorded if identity.startswith("id:")}
        allowed = clients.allowed_fhir_servers(uow, principal.org, principal.subject)
    if not _has_medications(request, resources):
        allow_private = get_settings().allow_private_webhooks
        resources = resources + fetch_active_medications(request, matched.fhir_id, allowed, allow_private=allow_private)
    medication_resources = [
        r for r in resources if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")
    ]
    active = orders.active_facts(cds, medication_resources, now, orders.draft_keys(draft_orders), known_ids)
    # order-select: the selected orders are the news; the other unsigned drafts are part of the picture.
    selected, unselected = _split_selections(request, orders.resources_of(draft_orders))
    drafts = orders.draft_facts(cds, selected, now)
    if not drafts.facts:
        return {"cards": []}
    others = orders.draft_facts(cds, unselected, now, prefix="cds-unselected").facts
    before = evaluate(stored + active.facts + others, now, params).to_dict()
    after = evaluate(stored + active.facts + others + drafts.facts, now, params).to_dict()
    raised_before = {flag["code"] for flag in before["flags"]}
    recommendations = {r["code"]: r for r in after["recommendations"]}
    rule_set = str(after["rule_set_version"])
    result = []
    for flag in after["flags"]:
        if flag["code"] in raised_before:
            continue
        card = cards.flag_card(rule_set, flag, recommendations.get(flag["code"]))
        if flag["code"] == "naloxone_indicated":
            card["suggestions"] = [cards.naloxone_suggestion(cds, matched.fhir_id)]
            card["selectionBehavior"] = "at-most-one"
        result.append(card)
    result.sort(key=lambda c: ("critical", "warning", "info").index(c["indicator"]))
    return {"cards": result}


# --- feedback ---------------------------------------------------------------------------------------------


class InvalidFeedback(ValueError):
    pass


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidFeedback("outcomeTimestamp is required")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFeedback("outcomeTimestamp is not an instant") from None
    if when.tzinfo is None:
        raise InvalidFeedback("outcomeTimestamp needs a UTC offset")
    return when


class ReminderActions(Protocol):
    """What a reminder card's override may do to the reminder. Reminders are the notifications service's:
    the composition root plugs its lifecycle in (`use_reminder_actions`), so the state machine and its
    history stay in one place. Each returns False when the reminder is not the caller organisation's or the
    transition makes no sense from its status (the reminder is left as it is)."""

    def snooze(self, uow: UnitOfWork, principal: Principal, reminder_id: str, until: datetime, reason: str) -> bool: ...

    def dismiss(self, uow: UnitOfWork, principal: Principal, reminder_id: str, reason: str) -> bool: ...


_reminder_actions: ReminderActions | None = None


def use_reminder_actions(actions: ReminderActions) -> None:
    global _reminder_actions
    _reminder_actions = actions


def _reminder_patient(uow: UnitOfWork, principal: Principal, card: str) -> str | None:
    """The patient of the reminder a card is about (reminder cards' uuid is the reminder id), or None."""
    statement = select(col(Reminder.patient_id)).where(col(Reminder.id) == card, col(Reminder.org) == principal.org)
    return uow.session.execute(statement).scalar_one_or_none()


def _act_on_reminder(
    uow: UnitOfWork, principal: Principal, card: str, code: str | None, now: datetime
) -> tuple[str | None, str | None]:
    """An override of a reminder card: snooze or dismiss the reminder (a valid transition only)."""
    if code is None or not (code in cards.SNOOZE_DAYS or code.startswith("dismiss_")):
        return None, None
    if _reminder_patient(uow, principal, card) is None:
        return None, None  # not a reminder card (or not this organisation's)
    if _reminder_actions is None:
        raise RuntimeError("no reminder actions configured (carepath.apps wires the notifications lifecycle)")
    if code in cards.SNOOZE_DAYS:
        until = now + timedelta(days=cards.SNOOZE_DAYS[code])
        done = _reminder_actions.snooze(uow, principal, card, until, code)
        return ("reminder_snoozed" if done else "reminder_unchanged"), card
    done = _reminder_actions.dismiss(uow, principal, card, code.removeprefix("dismiss_"))
    return ("reminder_dismissed" if done else "reminder_unchanged"), card


FeedbackAudit = Callable[[UnitOfWork, list[str]], None]


def record_feedback(principal: Principal, service_id: str, body: Any, audit_in: FeedbackAudit | None = None) -> int:
    """Record each feedback item; returns how many. InvalidFeedback for a malformed body (nothing stored).
    `audit_in(uow, patient_ids)` adds the audit row in the same transaction as the feedback and the
    reminder changes it makes (the patients are those of the reminder cards it names)."""
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > 100:
        raise InvalidFeedback("feedback: a list of 1 to 100 items")
    now = utcnow()
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("card"), str) or not 0 < len(item["card"]) <= 64:
            raise InvalidFeedback("feedback[].card is required")
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise InvalidFeedback("feedback[].outcome: accepted | overridden")
        when = _instant(item.get("outcomeTimestamp"))
        reason = item.get("overrideReason") if outcome == "overridden" else None
        coding = reason.get("reason") if isinstance(reason, dict) else None
        code = coding.get("code") if isinstance(coding, dict) and isinstance(coding.get("code"), str) else None
        system = coding.get("system") if isinstance(coding, dict) and isinstance(coding.get("system"), str) else None
        comment = reason.get("userComment") if isinstance(reason, dict) else None
        accepted = [
            str(s.get("id"))[:64] for s in item.get("acceptedSuggestions") or [] if isinstance(s, dict) and s.get("id")
        ]
        parsed.append(
            (item["card"], outcome, when, system, code, comment if isinstance(comment, str) else None, accepted)
        )
    with UnitOfWork() as uow:
        patients: list[str] = []
        for card, outcome, when, system, code, comment, accepted in parsed:
            if (patient_id := _reminder_patient(uow, principal, card)) is not None:
                patients.append(patient_id)
            action, reminder_id = (None, None)
            if outcome == "overridden" and service_id == PATIENT_VIEW and system == cards.OVERRIDE_SYSTEM:
                action, reminder_id = _act_on_reminder(uow, principal, card, code, now)
            uow.session.add(
                CdsFeedback(
                    org=principal.org,
                    service_id=service_id,
                    card_uuid=card,
                    outcome=outcome,
                    override_system=(system or None) and system[:300],
                    override_code=(code or None) and code[:100],
                    user_comment=comment[:1000] if comment else None,
                    accepted_suggestions=accepted or None,
                    outcome_at=when,
                    received_at=now,
                    actor=principal.actor[:120],
                    action=action,
                    reminder_id=reminder_id,
                )
            )
        if audit_in is not None:
            audit_in(uow, patients)
        uow.commit()
    return len(parsed)
