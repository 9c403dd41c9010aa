"""A medication concept's carepath drug class: the CDC value sets first (opioid_er, opioid_ir, benzodiazepine,
naloxone), then the non-opioid ingredient table (by ingredient code, or a product whose RxNorm name starts
with a known ingredient and is not a combination). Used by the FHIR ingestion and the CDS Hooks service."""

from __future__ import annotations

from typing import Any

from shared.fhir import codes
from shared.fhir.terminology import RXNORM, OpioidCds


def classify_concept(cds: OpioidCds, concept: Any) -> tuple[str, str | None] | None:
    """(drug class, RxNorm name) of the first RxNorm coding of a CodeableConcept (a fhir.resources model)
    that carepath knows, or None."""
    for coding in getattr(concept, "coding", None) or []:
        if coding.system != RXNORM or not coding.code:
            continue
        klass = cds.classify(coding.code)
        if klass is not None:
            return klass, cds.display(coding.code) or coding.display
        by_code = codes.NON_OPIOIDS.lookup(RXNORM, coding.code)
        if by_code is not None:
            return str(by_code), coding.display
        name = (coding.display or "").strip().lower()
        first = name.split(" ")[0] if name else ""
        if first in codes.NON_OPIOID_BY_NAME and " / " not in name:
            return str(codes.NON_OPIOID_BY_NAME[first]), coding.display
    return None
