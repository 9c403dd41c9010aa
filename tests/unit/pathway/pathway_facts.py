"""Fact builders for the pathway engine tests: readable histories in days after T0 (UTC)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from services.pathway.rules import Assessment, Fact, Params, evaluate

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_ids = count(1)


def at(days: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(days=days, seconds=seconds)


def fact(type_: str, day: float, data: dict[str, Any], id_: str | None = None, seconds: float = 0) -> Fact:
    return Fact(id_ or f"{type_}-{next(_ids)}", type_, at(day, seconds), data)


def surgery(day: float, procedure: str = "laminectomy", id_: str | None = None) -> Fact:
    return fact("surgery", day, {"procedure": procedure, "levels": ["L4-L5"]}, id_)


def pain(
    day: float,
    nrs: int,
    distribution: str = "axial",
    peg: float | None = None,
    facet: bool | None = None,
    id_: str | None = None,
    seconds: float = 0,
) -> Fact:
    data: dict[str, Any] = {"pain_nrs": nrs, "distribution": distribution}
    if peg is not None:
        data["function_peg"] = peg
    if facet is not None:
        data["facet_suspected"] = facet
    return fact("pain_assessment", day, data, id_, seconds)


def neuro(
    day: float, deficit: bool = False, cauda: bool | None = None, id_: str | None = None, seconds: float = 0
) -> Fact:
    data: dict[str, Any] = {"progressive_deficit": deficit}
    if cauda is not None:
        data["cauda_equina_signs"] = cauda
    return fact("neuro_exam", day, data, id_, seconds)


def imaging(
    day: float,
    modality: str = "mri",
    findings: Iterable[str] = ("no_surgical_target",),
    indication: str | None = None,
    id_: str | None = None,
) -> Fact:
    data: dict[str, Any] = {"modality": modality, "findings": list(findings)}
    if indication is not None:
        data["indication"] = indication
    return fact("imaging", day, data, id_)


def med(
    day: float,
    drug_class: str,
    action: str = "started",
    mme: float | None = None,
    id_: str | None = None,
    seconds: float = 0,
) -> Fact:
    data: dict[str, Any] = {"drug_class": drug_class, "action": action}
    if mme is not None:
        data["mme_per_day"] = mme
    return fact("medication", day, data, id_, seconds)


def monitoring(day: float, plan: bool = False, id_: str | None = None, **checks: bool) -> Fact:
    return fact("opioid_monitoring", day, {"plan_documented": plan, **checks}, id_)


def review(day: float, relief: bool, id_: str | None = None, **extra: Any) -> Fact:
    return fact("opioid_review", day, {"meaningful_relief": relief, **extra}, id_)


def therapy(
    day: float,
    kind: str,
    status: str = "started",
    modality: str | None = None,
    relief: bool | None = None,
    id_: str | None = None,
    seconds: float = 0,
) -> Fact:
    data: dict[str, Any] = {"kind": kind, "status": status}
    if modality is not None:
        data["modality"] = modality
    if relief is not None:
        data["meaningful_relief"] = relief
    return fact("therapy", day, data, id_, seconds)


def procedure(
    day: float,
    kind: str,
    relief: float | None = None,
    id_: str | None = None,
    seconds: float = 0,
    **extra: Any,
) -> Fact:
    data: dict[str, Any] = {"kind": kind, **extra}
    if relief is not None:
        data["relief_percent"] = relief
    return fact("procedure", day, data, id_, seconds)


def surgical_evaluation(day: float, outcome: str = "no_surgery_indicated", id_: str | None = None) -> Fact:
    return fact("surgical_evaluation", day, {"outcome": outcome}, id_)


def psychosocial(day: float, factors: Iterable[str], months: float | None = None, id_: str | None = None) -> Fact:
    data: dict[str, Any] = {"factors": list(factors)}
    if months is not None:
        data["symptom_months_before_surgery"] = months
    return fact("psychosocial", day, data, id_)


def evaluation_complete(start: float = 0, pain_nrs: int = 8, distribution: str = "radicular") -> list[Fact]:
    """Surgery at `start`; MRI, neuro exam (day+1) and pain assessment (day+2): first line from day+2."""
    return [
        surgery(start, id_=f"surgery@{start}"),
        imaging(start + 1, id_=f"mri@{start}"),
        neuro(start + 1, id_=f"neuro@{start}"),
        pain(start + 2, pain_nrs, distribution, id_=f"baseline@{start}"),
    ]


def failed_first_line(outcome_nrs: int = 8, outcome_day: float = 31) -> list[Fact]:
    """Evaluation complete, active PT + NSAID from day 3, outcome assessment: second line from day 45."""
    return evaluation_complete() + [
        therapy(3, "physical_therapy", id_="pt-start"),
        med(3, "nsaid", id_="nsaid"),
        pain(outcome_day, outcome_nrs, "radicular", id_="outcome"),
    ]


def refractory_history(relief: bool = False) -> list[Fact]:
    """Second line from day 45; CBT from day 50 (56 days: day 106); ESI at day 60."""
    facts = failed_first_line() + [
        therapy(50, "cbt", id_="cbt"),
        procedure(60, "epidural_steroid_injection", id_="esi", approach="interlaminar", image_guided=True),
    ]
    if relief:
        facts.append(pain(70, 4, "radicular", id_="improved"))
    return facts


def assess(facts: Sequence[Fact], day: float, seconds: float = 0, params: Params | None = None) -> Assessment:
    return evaluate(facts, at(day, seconds), params)


def flag_codes(assessment: Assessment) -> set[str]:
    return {flag.code for flag in assessment.flags}


def deadlines_of(assessment: Assessment, kind: str) -> list[tuple[datetime, str]]:
    return [(d.due_at, d.status) for d in assessment.deadlines if d.kind == kind]
