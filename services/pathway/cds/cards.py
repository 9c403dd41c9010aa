"""CDS Hooks 2.0 cards from the pathway's flags, recommendations and reminders, and a validator of the card
rules of the specification (required fields, lengths, enumerations) that the service and the tests apply to
every card."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlparse

from shared.fhir.terminology import RXNORM, OpioidCds

FLAG_SYSTEM = "https://carepath.dev/fhir/CodeSystem/lbp-postlam-flag"
STAGE_SYSTEM = "https://carepath.dev/fhir/CodeSystem/lbp-postlam-stage"
REMINDER_SYSTEM = "https://carepath.dev/fhir/CodeSystem/reminder-kind"
OVERRIDE_SYSTEM = "https://carepath.dev/fhir/CodeSystem/cds-override-reason"
INDICATORS = ("info", "warning", "critical")
SUMMARY_MAX = 140

# Red flags: urgent surgical evaluation.
CRITICAL = frozenset({"red_flag_neuro", "surgical_evaluation_pending"})
WARNING = frozenset(
    {
        "naloxone_indicated",
        "opioid_benzodiazepine_coprescription",
        "opioid_before_non_opioid_trial",
        "er_opioid_before_first_line_failed",
        "opioid_mme_unknown",
        "opioid_no_meaningful_relief",
        "opioid_tolerance_risk",
        "opioid_tolerance_or_hyperalgesia_reported",
        "opioid_monitoring_plan_missing",
        "pain_worsening",
        "surgical_target_on_imaging",
        "transforaminal_without_image_guidance",
        "rfa_without_positive_blocks",
        "repeat_surgery_criteria_unmet",
        "scs_before_other_therapies",
        "scs_implant_criteria_unmet",
        "scs_psychological_evaluation_needed",
        "esi_without_radicular_pain",
    }
)

FLAG_OVERRIDES = (
    ("not_applicable", "Not applicable to this patient"),
    ("already_addressed", "Already addressed"),
    ("clinically_justified", "Clinically justified: benefits outweigh risks"),
    ("patient_declined", "Patient declined"),
)
# A reminder card's reasons say what to do with the reminder (feedback.py acts on them).
REMINDER_OVERRIDES = (
    ("snooze_1d", "Remind me tomorrow"),
    ("snooze_7d", "Remind me in a week"),
    ("dismiss_already_done", "Already done (dismiss the reminder)"),
    ("dismiss_not_applicable", "Not applicable (dismiss the reminder)"),
    ("dismiss_patient_declined", "Patient declined (dismiss the reminder)"),
)
SNOOZE_DAYS = {"snooze_1d": 1, "snooze_7d": 7}


def _codings(reasons: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"system": OVERRIDE_SYSTEM, "code": code, "display": display} for code, display in reasons]


def indicator(flag: str) -> str:
    if flag in CRITICAL:
        return "critical"
    return "warning" if flag in WARNING else "info"


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def _title(flag: str) -> str:
    return flag.replace("_", " ").capitalize()


def _source(rule_set: str, topic: dict[str, str], sources: list[dict[str, Any]], citation: str) -> dict[str, Any]:
    source: dict[str, Any] = {"label": f"carepath {rule_set} [{citation}]" if citation else f"carepath {rule_set}"}
    url = next((s["url"] for s in sources if s.get("url")), None)
    if url:
        source["url"] = url
    source["topic"] = topic
    return source


def _sources_markdown(sources: list[dict[str, Any]]) -> str:
    lines = []
    for item in sources:
        title = str(item.get("title") or item.get("code"))
        line = f"- **{item.get('code')}**: {title}"
        if item.get("url"):
            line += f" ([link]({item['url']}))"
        lines.append(line)
    return "\n".join(lines)


def flag_card(rule_set: str, flag: dict[str, Any], recommendation: dict[str, Any] | None) -> dict[str, Any]:
    """One card for a flag with its recommendation (text, citation resolved to sources)."""
    code = str(flag["code"])
    text = str(recommendation["text"]) if recommendation else str(flag.get("rationale") or _title(code))
    sources = list(recommendation.get("sources") or []) if recommendation else []
    citation = str(recommendation.get("citation") or "") if recommendation else ""
    detail = text
    if flag.get("rationale"):
        detail += f"\n\n*Why:* {flag['rationale']}"
    if sources:
        detail += "\n\n**Sources**\n\n" + _sources_markdown(sources)
    topic = {"system": FLAG_SYSTEM, "code": code, "display": _title(code)}
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(text),
        "indicator": indicator(code),
        "detail": detail,
        "source": _source(rule_set, topic, sources, citation),
        "overrideReasons": _codings(FLAG_OVERRIDES),
    }


def stage_card(rule_set: str, assessment: dict[str, Any]) -> dict[str, Any]:
    stage = str(assessment.get("stage"))
    reason = (assessment.get("stage_reason") or {}).get("text") or ""
    display = stage.replace("_", " ")
    summary = f"Low back pain after laminectomy: pathway stage {display}"
    detail = reason
    if assessment.get("current_mme") is not None:
        detail += f"\n\nCurrent opioid dose: {assessment['current_mme']} MME/day."
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary),
        "indicator": "critical" if stage == "urgent" else "info",
        "detail": detail or summary,
        "source": {
            "label": f"carepath {rule_set}",
            "topic": {"system": STAGE_SYSTEM, "code": stage, "display": display},
        },
    }


def reminder_card(reminder: Any, now: Any) -> dict[str, Any]:
    """A due or overdue reminder; its uuid is the reminder's id, so feedback can act on the reminder."""
    overdue = reminder.due_at < now
    when = reminder.due_at.strftime("%Y-%m-%d")
    summary = f"{'Overdue' if overdue else 'Due'} since {when}: {reminder.text}"
    sources = list(reminder.sources or [])
    detail = str(reminder.text)
    if sources:
        detail += "\n\n**Sources**\n\n" + _sources_markdown(sources)
    kind = str(reminder.kind)
    topic = {"system": REMINDER_SYSTEM, "code": kind, "display": _title(kind)}
    return {
        "uuid": str(reminder.id),
        "summary": _summary(summary),
        "indicator": "warning" if overdue else "info",
        "detail": detail,
        "source": _source("reminder", topic, sources, str(reminder.citation or "")),
        "overrideReasons": _codings(REMINDER_OVERRIDES),
    }


def _naloxone_product(cds: OpioidCds) -> tuple[str, str]:
    """A generic naloxone nasal spray of the value set (the lowest code: 40 MG/ML, the 4 mg spray), else the
    first naloxone product (never a buprenorphine/naloxone combination)."""
    products = sorted((c, d) for c, d in cds.value_sets["naloxone"].items() if cds.classify(c) == "naloxone")
    for code, display in products:
        if "nasal spray" in display.lower() and "[" not in display:
            return code, display
    return products[0]


def naloxone_suggestion(cds: OpioidCds, fhir_patient: str) -> dict[str, Any]:
    code, display = _naloxone_product(cds)
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{fhir_patient}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "dosageInstruction": [{"text": "For suspected opioid overdose; repeat after 2-3 minutes if needed."}],
    }
    return {
        "label": f"Order naloxone ({display})"[:SUMMARY_MAX],
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": [{"type": "create", "description": "Add a naloxone order", "resource": resource}],
    }


# --- validation -------------------------------------------------------------------------------------------


def _absolute_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _coding_problems(where: str, coding: Any, need_code: bool) -> list[str]:
    if not isinstance(coding, dict):
        return [f"{where}: not an object"]
    problems = []
    for key in ("system", "code", "display"):
        if key in coding and not isinstance(coding[key], str):
            problems.append(f"{where}.{key}: not a string")
    if need_code and not (isinstance(coding.get("code"), str) and coding["code"]):
        problems.append(f"{where}.code: required")
    if need_code and not (isinstance(coding.get("system"), str) and coding["system"]):
        problems.append(f"{where}.system: required")
    return problems


def card_problems(card: Any) -> list[str]:
    """What breaks the CDS Hooks 2.0 card rules (empty: valid)."""
    if not isinstance(card, dict):
        return ["card: not an object"]
    problems: list[str] = []
    try:
        uuid.UUID(str(card.get("uuid")))
    except ValueError:
        problems.append("uuid: required, a UUID")
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append("summary: required")
    elif len(summary) > SUMMARY_MAX:
        problems.append(f"summary: {len(summary)} characters (at most {SUMMARY_MAX})")
    if card.get("indicator") not in INDICATORS:
        problems.append("indicator: one of info, warning, critical")
    if "detail" in card and not isinstance(card["detail"], str):
        problems.append("detail: Markdown text")
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source["label"]:
        problems.append("source.label: required")
    else:
        if "url" in source and not _absolute_url(source["url"]):
            problems.append("source.url: an absolute URL")
        if "icon" in source and not _absolute_url(source["icon"]):
            problems.append("source.icon: an absolute URL")
        if "topic" in source:
            problems += _coding_problems("source.topic", source["topic"], need_code=True)
    suggestions = card.get("suggestions")
    if suggestions is not None:
        if not isinstance(suggestions, list):
            problems.append("suggestions: a list")
        else:
            if suggestions and card.get("selectionBehavior") not in ("at-most-one", "any"):
                problems.append("selectionBehavior: required with suggestions (at-most-one | any)")
            for i, suggestion in enumerate(suggestions):
                problems += _suggestion_problems(f"suggestions[{i}]", suggestion)
    reasons = card.get("overrideReasons")
    if reasons is not None:
        if not isinstance(reasons, list):
            problems.append("overrideReasons: a list of Codings")
        else:
            for i, reason in enumerate(reasons):
                problems += _coding_problems(f"overrideReasons[{i}]", reason, need_code=True)
    for i, link in enumerate(card.get("links") or []):
        if not isinstance(link, dict) or not isinstance(link.get("label"), str) or not _absolute_url(link.get("url")):
            problems.append(f"links[{i}]: label and absolute url required")
        elif link.get("type") not in ("absolute", "smart"):
            problems.append(f"links[{i}].type: absolute | smart")
    return problems


def _suggestion_problems(where: str, suggestion: Any) -> list[str]:
    if not isinstance(suggestion, dict):
        return [f"{where}: not an object"]
    problems = []
    if not isinstance(suggestion.get("label"), str) or not suggestion["label"]:
        problems.append(f"{where}.label: required")
    if "uuid" in suggestion:
        try:
            uuid.UUID(str(suggestion["uuid"]))
        except ValueError:
            problems.append(f"{where}.uuid: a UUID")
    if "isRecommended" in suggestion and not isinstance(suggestion["isRecommended"], bool):
        problems.append(f"{where}.isRecommended: boolean")
    for j, action in enumerate(suggestion.get("actions") or []):
        at = f"{where}.actions[{j}]"
        if not isinstance(action, dict):
            problems.append(f"{at}: not an object")
            continue
        if action.get("type") not in ("create", "update", "delete"):
            problems.append(f"{at}.type: create | update | delete")
        if not isinstance(action.get("description"), str) or not action["description"]:
            problems.append(f"{at}.description: required")
        if action.get("type") in ("create", "update") and not isinstance(action.get("resource"), dict):
            problems.append(f"{at}.resource: required for {action.get('type')}")
        if action.get("type") == "delete" and not action.get("resourceId"):
            problems.append(f"{at}.resourceId: required for delete")
    return problems


def response_problems(body: Any) -> list[str]:
    """What breaks the rules of a CDS Hooks service response ({"cards": [...]})."""
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return ["cards: required, a list"]
    problems = []
    for i, card in enumerate(body["cards"]):
        problems += [f"cards[{i}].{problem}" for problem in card_problems(card)]
    uuids = [card.get("uuid") for card in body["cards"] if isinstance(card, dict)]
    if len(uuids) != len(set(uuids)):
        problems.append("cards: uuids are not unique")
    return problems
