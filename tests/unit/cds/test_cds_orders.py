"""The pure parts of the CDS service: prefetch shapes, context.patientId forms, draft orders as facts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.pathway.cds.orders import active_facts, draft_facts, draft_keys, resources_of
from services.pathway.cds.service import fhir_patient_id
from shared.fhir import terminology

CDS_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "opioid-cds"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def cds() -> terminology.OpioidCds:
    return terminology.load_cached(CDS_DIR)


def order(code: str, display: str, *, status: str = "draft", id_: str = "o1", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": id_,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": RX, "code": code, "display": display}]},
        **extra,
    }


PATCH = order(
    "197696",
    "72 HR Fentanyl 0.075 MG/HR Transdermal System",
    dosageInstruction=[
        {
            "timing": {"repeat": {"frequency": 1, "period": 3, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch", "code": "{patch}"}}],
        }
    ],
)


def test_resources_of_every_prefetch_shape() -> None:
    resource = {"resourceType": "Patient", "id": "p"}
    bundle = {"resourceType": "Bundle", "entry": [{"resource": resource}, {"response": {"status": "404"}}]}
    assert resources_of(None) == []
    assert resources_of("text") == []
    assert resources_of(resource) == [resource]
    assert resources_of({"response": {"status": "200"}, "resource": resource}) == [resource]
    assert resources_of(bundle) == [resource]
    assert resources_of([bundle, None, resource]) == [resource, resource]
    assert resources_of({"no": "type"}) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        ("Patient/abc", "abc"),
        ("https://ehr.example/fhir/Patient/abc", "abc"),
        ("Practitioner/abc", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_patient_id_forms(value: Any, expected: str | None) -> None:
    assert fhir_patient_id({"patientId": value}) == expected


def test_a_fentanyl_patch_draft_is_an_er_opioid_of_180_mme(cds: terminology.OpioidCds) -> None:
    drafts = draft_facts(cds, {"resourceType": "Bundle", "entry": [{"resource": PATCH}]}, NOW)
    (fact,) = drafts.facts
    assert fact.type == "medication" and fact.occurred_at == NOW
    assert fact.data["drug_class"] == "opioid_er" and fact.data["mme_per_day"] == 180.0


def test_unknown_codes_and_non_orders_are_skipped(cds: terminology.OpioidCds) -> None:
    unknown = order("892495", "Morphine Sulfate 10 MG [Kadian]")
    plan = {**PATCH, "intent": "option"}
    done = {**PATCH, "status": "completed"}
    assert draft_facts(cds, [unknown, plan, done, {"resourceType": "Observation"}], NOW).facts == []


def test_prefetched_orders_collide_only_when_they_are_the_draft(cds: terminology.OpioidCds) -> None:
    benzo = order("104693", "Temazepam 20 MG Oral Tablet", status="active", authoredOn="2026-11-02")
    echo = {**PATCH, "status": "active"}
    facts = active_facts(cds, [benzo, echo], NOW, draft_keys([PATCH]), known_ids=set()).facts
    assert [f.data["drug_class"] for f in facts] == ["benzodiazepine"]  # same id as the draft, other code
    assert facts[0].occurred_at == datetime(2026, 11, 2, tzinfo=UTC)
    assert active_facts(cds, [benzo], NOW, set(), known_ids={"o1"}).facts == []  # recorded already


def test_a_naloxone_draft_means_naloxone_offered(cds: terminology.OpioidCds) -> None:
    code, display = next((c, d) for c, d in sorted(cds.value_sets["naloxone"].items()) if cds.classify(c) == "naloxone")
    (fact,) = draft_facts(cds, [order(code, display)], NOW).facts
    assert fact.type == "opioid_monitoring" and fact.data["naloxone_offered"] is True


def test_the_suggested_naloxone_is_a_naloxone_product(cds: terminology.OpioidCds) -> None:
    from services.pathway.cds.cards import naloxone_suggestion

    resource = naloxone_suggestion(cds, "p")["actions"][0]["resource"]
    coding = resource["medicationCodeableConcept"]["coding"][0]
    assert cds.classify(coding["code"]) == "naloxone" and "nasal spray" in coding["display"].lower()
    (fact,) = draft_facts(cds, [resource], NOW).facts  # ordering the suggestion offers naloxone
    assert fact.type == "opioid_monitoring"
