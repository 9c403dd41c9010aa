"""Morphine milligram equivalents per day from a FHIR dosage and the RxNorm name of the product.

daily dose (mg/day) × the CDC 2022 factor of each opioid ingredient; the fentanyl patch: mcg/hr × 2.4 per patch
worn. Where the dose cannot be computed exactly (a dose or frequency range, "as needed" without a maximum,
a unit that is not the product's, a name that does not parse, an ingredient without a factor) the result
is None with the reason: never a guess."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.fhir.terminology import OpioidCds

# An RxNorm normalised name: "[N HR ]ingredient strength UNIT[ / ingredient strength UNIT …] Dose Form[ [Brand]]".
_BRAND = re.compile(r"\s*\[[^\]]*\]\s*$")
_PREFIX = re.compile(r"^\d+(\.\d+)? (HR|ACTUAT) ")
_COMPONENT = re.compile(r"([a-z][a-z,\- ]*?) (\d+(?:\.\d+)?) (MG/ML|MG/HR|MCG/HR|MG/ACTUAT|MCG/ACTUAT|MG|MCG)(?=\s|$)")

_COUNT_UNITS = {
    "tablet",
    "tab",
    "tbl",
    "{tbl}",
    "{tablet}",
    "{tablets}",
    "tablets",
    "capsule",
    "cap",
    "{cap}",
    "{capsule}",
    "capsules",
    "1",
    "{patch}",
    "patch",
    "patches",
    "suppository",
    "{suppository}",
    "lozenge",
    "film",
    "{film}",
    "each",
    "{each}",
}
_MG = {"mg": Decimal(1), "mcg": Decimal("0.001"), "ug": Decimal("0.001"), "g": Decimal(1000)}
_ML = {"ml", "mL".lower()}
_HOURS = {"s": Decimal(1) / 3600, "min": Decimal(1) / 60, "h": Decimal(1), "d": Decimal(24), "wk": Decimal(168)}
# HL7 v3 GTSAbbreviation timing codes: administrations per day.
_TIMING_CODES = {
    "QD": Decimal(1),
    "AM": Decimal(1),
    "PM": Decimal(1),
    "BID": Decimal(2),
    "TID": Decimal(3),
    "QID": Decimal(4),
    "Q1H": Decimal(24),
    "Q2H": Decimal(12),
    "Q3H": Decimal(8),
    "Q4H": Decimal(6),
    "Q6H": Decimal(4),
    "Q8H": Decimal(3),
    "QOD": Decimal("0.5"),
}


@dataclass(frozen=True)
class Component:
    ingredient: str  # as named ("oxycodone hydrochloride")
    strength: Decimal
    unit: str  # MG, MCG, MG/ML, MG/HR, MCG/HR, MG/ACTUAT, MCG/ACTUAT


@dataclass(frozen=True)
class Product:
    components: tuple[Component, ...]
    dose_form: str  # "Oral Tablet", "Transdermal System", …


@dataclass(frozen=True)
class MmeResult:
    mme_per_day: float | None
    reason: str | None = None  # why there is no MME


def parse_rxnorm_name(name: str) -> Product | None:
    """Ingredients, strengths and dose form from an RxNorm SCD/SBD name; None when it does not parse (packs)."""
    text = _BRAND.sub("", name.strip())
    if not text or text.startswith("{"):
        return None
    text = _PREFIX.sub("", text)
    matches = list(_COMPONENT.finditer(text))
    if not matches:
        return None
    components = tuple(Component(m.group(1).strip(), Decimal(m.group(2)), m.group(3)) for m in matches)
    dose_form = text[matches[-1].end() :].strip()
    if not dose_form:
        return None
    return Product(components, dose_form)


def _get(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _unit(quantity: Any) -> str | None:
    unit = _get(quantity, "code") or _get(quantity, "unit")
    return str(unit).strip().lower() if unit else None


def _per_day(timing: Any) -> tuple[Decimal | None, str | None]:
    """Administrations per day from Dosage.timing, or the reason it cannot be known."""
    if timing is None:
        return None, "no timing: the frequency is unknown"
    repeat = _get(timing, "repeat")
    if repeat is not None:
        if _get(repeat, "frequencyMax") is not None or _get(repeat, "periodMax") is not None:
            return None, "a frequency range (frequencyMax/periodMax)"
        period = _get(repeat, "period")
        unit = _get(repeat, "periodUnit")
        if period is not None and unit is not None:
            if unit not in _HOURS:
                return None, f"period unit {unit!r} is not one of s, min, h, d, wk"
            hours = Decimal(str(period)) * _HOURS[unit]
            if hours <= 0:
                return None, "a period of zero"
            frequency = Decimal(str(_get(repeat, "frequency") or 1))
            return frequency * Decimal(24) / hours, None
    code = _get(timing, "code")
    for coding in _get(code, "coding") or []:
        if _get(coding, "code") in _TIMING_CODES:
            return _TIMING_CODES[str(coding.code)], None
    return None, "no timing.repeat frequency/period or known timing code"


def _max_per_day(dosage: Any) -> tuple[Decimal | None, str | None, str | None]:
    """maxDosePerPeriod as (amount per day, its unit) or a reason."""
    ratio = _get(dosage, "maxDosePerPeriod")
    numerator, denominator = _get(ratio, "numerator"), _get(ratio, "denominator")
    if _get(numerator, "value") is None or _get(denominator, "value") is None:
        return None, None, "as needed without maxDosePerPeriod"
    unit = _unit(denominator)
    if unit not in _HOURS or Decimal(str(denominator.value)) <= 0:
        return None, None, "maxDosePerPeriod with an unknown period unit"
    hours = Decimal(str(denominator.value)) * _HOURS[unit]
    return Decimal(str(numerator.value)) * Decimal(24) / hours, _unit(numerator), None


def _dose(dosage: Any) -> tuple[Decimal | None, str | None, str | None]:
    rates = _get(dosage, "doseAndRate") or []
    if len(rates) != 1:
        return None, None, "no dose" if not rates else "several doses in one dosage instruction"
    if _get(rates[0], "doseRange") is not None:
        return None, None, "a dose range"
    quantity = _get(rates[0], "doseQuantity")
    if _get(quantity, "value") is None:
        return None, None, "no doseQuantity"
    return Decimal(str(quantity.value)), _unit(quantity), None


def _opioid_factor(cds: OpioidCds, component: Component, dose_form: str) -> tuple[Any, str | None]:
    base = component.ingredient.split(" ")[0]
    if base == "fentanyl":
        if "Transdermal" in dose_form and component.unit in ("MG/HR", "MCG/HR"):
            return cds.factors.get("fentanyl transdermal"), None
        return None, f"fentanyl {dose_form}: no CDC 2022 factor (only the transdermal patch has one)"
    factor = cds.factors.get(base)
    if factor is None:
        return None, f"{base}: no CDC 2022 conversion factor"
    return factor, None


def compute(cds: OpioidCds, product_name: str | None, dosages: list[Any]) -> MmeResult:
    """MME/day of one opioid product given its Dosage list (fhir.resources R4B Dosage models)."""
    if not product_name:
        return MmeResult(None, "the product's RxNorm name is unknown")
    product = parse_rxnorm_name(product_name)
    if product is None:
        return MmeResult(None, "the RxNorm name does not parse into ingredient, strength and dose form")
    opioids = [c for c in product.components if c.ingredient.split(" ")[0] in cds.opioid_ingredients]
    if not opioids:
        return MmeResult(None, "no opioid ingredient resolved from the RxNorm name")
    if len(dosages) != 1:
        return MmeResult(None, "no dosage instruction" if not dosages else "several dosage instructions")
    dosage = dosages[0]
    per_day: Decimal | None = None
    as_needed = bool(_get(dosage, "asNeededBoolean")) or _get(dosage, "asNeededCodeableConcept") is not None
    if as_needed:
        amount, unit, reason = _max_per_day(dosage)
        per_day = Decimal(1)
    else:
        amount, unit, reason = _dose(dosage)
        if reason is None:
            per_day, reason = _per_day(_get(dosage, "timing"))
    if reason is not None or amount is None:
        return MmeResult(None, reason or "no dose")
    if unit in _MG and len(product.components) > 1:
        return MmeResult(None, "a dose in mg of a combination product does not say which ingredient")
    total = Decimal(0)
    for component in opioids:
        factor, why = _opioid_factor(cds, component, product.dose_form)
        if factor is None:
            return MmeResult(None, why)
        if factor.basis == "mcg/hr":
            mcg_per_hour = component.strength * (1000 if component.unit == "MG/HR" else 1)
            if unit in _COUNT_UNITS:
                total += amount * mcg_per_hour * factor.factor  # patches worn at once × strength
            elif unit in ("mcg/h", "ug/h", "mcg/hr"):
                total += amount * factor.factor
            else:
                return MmeResult(None, f"patch dose unit {unit!r} is not patches or mcg/h")
            continue
        if per_day is None:
            return MmeResult(None, "the frequency is unknown")
        mg = _milligrams(amount, unit, component)
        if mg is None:
            return MmeResult(None, f"dose unit {unit!r} does not convert to mg of {component.ingredient}")
        total += mg * per_day * factor.factor
    return MmeResult(float(round(total, 2)))


def _milligrams(amount: Decimal, unit: str | None, component: Component) -> Decimal | None:
    """The mg of the ingredient in one dose (or, PRN, in the day's maximum)."""
    if unit in _MG:
        return amount * _MG[unit]
    if unit in _COUNT_UNITS and component.unit in ("MG", "MCG"):
        return amount * component.strength * (Decimal("0.001") if component.unit == "MCG" else 1)
    if unit in _ML and component.unit == "MG/ML":
        return amount * component.strength
    return None
