"""The CDC opioid guideline's RxNorm value sets and MME conversion factors, loaded from files at start-up.

The folder is the setting `opioid_cds_dir` (default: shared/data/opioid-cds beside the checkout):
`valuesets/*.json` (FHIR ValueSet expansions) and `mme_conversion_factors.csv` (rows of table
`B_IG_narrative_CDC2022` are used). No code of these sets is copied into Python."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from shared.settings import Settings, get_settings

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CDC2022_TABLE = "B_IG_narrative_CDC2022"

VALUE_SET_FILES = {
    "opioid": "opioid-analgesics-with-ambulatory-misuse-potential.json",
    "extended_release": "extended-release-opioid-with-ambulatory-misuse-potential.json",
    "benzodiazepine": "benzodiazepine-medications.json",
    "naloxone": "naloxone-medications.json",
}


@dataclass(frozen=True)
class Factor:
    """One CDC 2022 conversion factor: MME per mg/day, or, for the fentanyl patch, per mcg/hr."""

    ingredient: str  # lower case, as the CSV spells it ("oxycodone", "fentanyl transdermal")
    rxnorm_ingredient: str | None
    factor: Decimal
    basis: str  # "mg/day" | "mcg/hr"


@dataclass(frozen=True)
class OpioidCds:
    value_sets: dict[str, dict[str, str]]  # set name -> RxNorm code -> display
    urls: dict[str, str]  # set name -> canonical URL
    factors: dict[str, Factor]  # ingredient (lower case) -> CDC 2022 factor
    opioid_ingredients: frozenset[str]  # every opioid ingredient the CSV names (with or without a 2022 factor)

    def classify(self, code: str) -> str | None:
        """opioid_er | opioid_ir | benzodiazepine | naloxone | None, for an RxNorm code."""
        if code in self.value_sets["extended_release"]:
            return "opioid_er"
        if code in self.value_sets["opioid"]:
            return "opioid_ir"  # buprenorphine/naloxone combinations are opioids first
        if code in self.value_sets["benzodiazepine"]:
            return "benzodiazepine"
        if code in self.value_sets["naloxone"]:
            return "naloxone"
        return None

    def display(self, code: str) -> str | None:
        for codes in self.value_sets.values():
            if code in codes:
                return codes[code]
        return None


def _value_set(path: Path) -> tuple[str, dict[str, str]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    codes: dict[str, str] = {}
    for item in document.get("expansion", {}).get("contains", []):
        if item.get("system") == RXNORM and item.get("code"):
            codes[str(item["code"])] = str(item.get("display", ""))
    for include in document.get("compose", {}).get("include", []):
        if include.get("system") == RXNORM:
            for concept in include.get("concept", []):
                codes[str(concept["code"])] = str(concept.get("display", ""))
    if not codes:
        raise ValueError(f"{path.name}: no RxNorm codes in the value set")
    return str(document.get("url", "")), codes


def _factor(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except ArithmeticError:
        return None


def _factors(path: Path) -> tuple[dict[str, Factor], frozenset[str]]:
    factors: dict[str, Factor] = {}
    names: set[str] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            ingredient = row["ingredient"].strip().lower()
            if ingredient.startswith("("):  # "(any other ingredient …)": a note, not an ingredient
                continue
            value = _factor(row["conversion_factor"])
            if value is None or value > 0:  # non-opioid ingredients of combinations carry an explicit 0
                names.add(ingredient.split(" ")[0])
            if row["table"] != CDC2022_TABLE or value is None:
                continue
            basis = "mcg/hr" if row["dose_basis"].strip() == "mcg/hr" else "mg/day"
            code = row["rxnorm_ingredient_code"].strip() or None
            factors[ingredient] = Factor(ingredient, code, value, basis)
    if not factors:
        raise ValueError(f"{path.name}: no {CDC2022_TABLE} factors")
    return factors, frozenset(names)


def load(directory: Path) -> OpioidCds:
    sets: dict[str, dict[str, str]] = {}
    urls: dict[str, str] = {}
    for name, filename in VALUE_SET_FILES.items():
        urls[name], sets[name] = _value_set(directory / "valuesets" / filename)
    factors, names = _factors(directory / "mme_conversion_factors.csv")
    return OpioidCds(sets, urls, factors, names)


@lru_cache(maxsize=4)
def load_cached(directory: Path) -> OpioidCds:
    return load(directory)


class TerminologyUnavailable(RuntimeError):
    """The value sets and MME factors are not where CAREPATH_OPIOID_CDS_DIR points: medication orders and
    statements cannot be classified (never guessed)."""


def configured(settings: Settings | None = None) -> OpioidCds:
    """The value sets and MME factors of the configured folder (read once per folder; a missing folder is
    retried on the next call, so data that appears later is used)."""
    directory = (settings or get_settings()).opioid_cds_dir.resolve()
    try:
        return load_cached(directory)
    except FileNotFoundError as missing:
        raise TerminologyUnavailable(
            f"the opioid value sets and MME factors are missing from {directory} (CAREPATH_OPIOID_CDS_DIR)"
        ) from missing
