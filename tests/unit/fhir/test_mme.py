"""MME per day from a FHIR dosage (fhir.resources R4B Dosage) and the RxNorm name, with the CDC 2022 factors
of the shared CSV; every case that cannot be computed exactly gives no MME and a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medicationrequest import MedicationRequest

from shared.fhir import mme, terminology
from shared.settings import Settings

CDS = terminology.load(Settings().opioid_cds_dir)
CDS_EXAMPLES = Settings().opioid_cds_dir / "cds-examples"
TAB = {
    "value": 1,
    "unit": "tablet",
    "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
    "code": "TAB",
}


def every(hours: float, dose: dict[str, Any] | None = None, **extra: Any) -> Dosage:
    return Dosage.model_validate(
        {
            "timing": {"repeat": {"frequency": 1, "period": hours, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": dose or TAB}],
            **extra,
        }
    )


def name(code: str) -> str:
    display = CDS.display(code)
    assert display is not None, code
    return display


CASES = {
    "oxycodone 5 mg tablet every 6 h (factor 1.5)": ("1049621", [every(6)], 30.0),
    "fentanyl 75 mcg/h patch every 72 h (2.4 per mcg/h)": ("197696", [every(72, {"value": 1, "unit": "patch"})], 180.0),
    "fentanyl patch dosed in mcg/h": ("197696", [every(72, {"value": 75, "unit": "mcg/h", "code": "ug/h"})], 180.0),
    "hydromorphone 2 mg every 4 h (CDC 2022 factor 5, not 4)": (None, [every(4, {"value": 2, "code": "mg"})], 60.0),
    "methadone 10 mg three times a day (flat 4.7)": (None, [every(8, {"value": 10, "code": "mg"})], 141.0),
    "oxycodone/acetaminophen 1 tablet BID (timing code)": (
        "1049221",
        [
            Dosage.model_validate(
                {"timing": {"code": {"coding": [{"code": "BID"}]}}, "doseAndRate": [{"doseQuantity": TAB}]}
            )
        ],
        15.0,
    ),
    "oxycodone 1 mg/mL solution 5 mL every 4 h": (
        "1049604",
        [every(4, {"value": 5, "unit": "mL", "code": "mL"})],
        45.0,
    ),
    "PRN with a maximum of 6 tablets per day uses the maximum": (
        "1049621",
        [
            Dosage.model_validate(
                {
                    "asNeededBoolean": True,
                    "doseAndRate": [{"doseQuantity": TAB}],
                    "maxDosePerPeriod": {
                        "numerator": {"value": 6, "unit": "tablet"},
                        "denominator": {"value": 1, "code": "d"},
                    },
                }
            )
        ],
        45.0,
    ),
}
NAMES = {
    "hydromorphone 2 mg every 4 h (CDC 2022 factor 5, not 4)": "hydromorphone hydrochloride 2 MG Oral Tablet",
    "methadone 10 mg three times a day (flat 4.7)": "methadone hydrochloride 10 MG Oral Tablet",
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_mme_per_day(case: str) -> None:
    code, dosages, expected = CASES[case]
    product = name(code) if code else NAMES[case]
    result = mme.compute(CDS, product, dosages)
    assert result == mme.MmeResult(expected), result


NO_MME = {
    "PRN without a maximum": (
        "1049621",
        [Dosage.model_validate({"asNeededBoolean": True, "doseAndRate": [{"doseQuantity": TAB}]})],
        "as needed",
    ),
    "a dose range": (
        "1049621",
        [
            Dosage.model_validate(
                {
                    "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                    "doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2}}}],
                }
            )
        ],
        "range",
    ),
    "a frequency range": (
        "1049621",
        [
            Dosage.model_validate(
                {
                    "timing": {"repeat": {"frequency": 1, "frequencyMax": 2, "period": 6, "periodUnit": "h"}},
                    "doseAndRate": [{"doseQuantity": TAB}],
                }
            )
        ],
        "range",
    ),
    "an unknown unit": ("1049621", [every(6, {"value": 2, "unit": "puff"})], "unit"),
    "mg of a combination product": ("1049221", [every(6, {"value": 5, "code": "mg"})], "combination"),
    "no timing": ("1049621", [Dosage.model_validate({"doseAndRate": [{"doseQuantity": TAB}]})], "timing"),
    "buprenorphine has no CDC 2022 factor": ("351265", [every(8)], "buprenorphine"),
    "fentanyl buccal has no factor": ("668363", [every(6)], "fentanyl"),
    "no dosage instruction": ("1049621", [], "no dosage"),
    "two dosage instructions": ("1049621", [every(6), every(12)], "several"),
}


@pytest.mark.parametrize("case", NO_MME, ids=list(NO_MME))
def test_no_mme_and_the_reason(case: str) -> None:
    code, dosages, reason = NO_MME[case]
    result = mme.compute(CDS, name(code), dosages)
    assert result.mme_per_day is None
    assert result.reason is not None and reason in result.reason


def test_unparsable_names_give_no_mme() -> None:
    pack = "{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray) } Pack"
    assert mme.parse_rxnorm_name(pack) is None
    assert mme.compute(CDS, pack, [every(6)]).mme_per_day is None
    assert mme.compute(CDS, None, [every(6)]).reason == "the product's RxNorm name is unknown"


def test_every_opioid_of_the_value_set_parses_except_packs() -> None:
    unparsed = [n for n in CDS.value_sets["opioid"].values() if mme.parse_rxnorm_name(n) is None]
    assert unparsed and all(n.startswith("{") for n in unparsed)
    oxy = mme.parse_rxnorm_name("acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet [Percocet]")
    assert oxy is not None and oxy.dose_form == "Oral Tablet"
    assert [(c.ingredient, str(c.strength), c.unit) for c in oxy.components] == [
        ("acetaminophen", "325", "MG"),
        ("oxycodone hydrochloride", "5", "MG"),
    ]


def test_value_sets_and_factors_come_from_the_files() -> None:
    assert CDS.classify("197696") == "opioid_er"  # fentanyl patch: extended-release set
    assert CDS.classify("1049621") == "opioid_ir"
    assert CDS.classify("197901") == "benzodiazepine"
    assert CDS.classify("1725059") == "naloxone"
    assert CDS.classify("1010603") == "opioid_ir"  # buprenorphine/naloxone: an opioid, not naloxone provided
    assert str(CDS.factors["hydromorphone"].factor) == "5.0"
    assert CDS.factors["fentanyl transdermal"].basis == "mcg/hr"


def test_a_missing_folder_fails_at_load(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        terminology.load(tmp_path)


def _draft_order(name: str) -> MedicationRequest:
    document = json.loads((CDS_EXAMPLES / name).read_text())
    return MedicationRequest.model_validate(document["context"]["draftOrders"]["entry"][0]["resource"])


def test_real_cds_request_fentanyl_order_uses_the_reference_formula() -> None:
    """The CDC IG's own request (0.2 patch every 12 days, an untidy dose): patches × mcg/hr × 2.4, as its CQL."""
    order = _draft_order("request-example-rec-08-on-benzodiazepine.json")
    code = order.medicationCodeableConcept.coding[0].code
    assert CDS.classify(code) == "opioid_er"
    assert mme.compute(CDS, CDS.display(code), order.dosageInstruction) == mme.MmeResult(36.0)


def test_real_cds_request_with_a_code_outside_the_value_sets_is_not_classified() -> None:
    order = _draft_order("request-example-rec-04-05-mme-less-than-fifty.json")
    code = order.medicationCodeableConcept.coding[0].code  # "Morphine Sulfate 10 MG [Kadian]": a branded component
    assert CDS.classify(code) is None and CDS.display(code) is None
