"""The examples of docs/interop.md are copyable: each one posts and is recorded as the doc says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_intake_app
from shared.db.tables import PatientUpdate
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.fhir.fhir_support import post_bundle

pytestmark = pytest.mark.integration
# The FHIR part of the doc (the CDS Hooks section after it has its own test, tests/integration/cds).
DOC = (Path(__file__).resolve().parents[3] / "docs" / "interop.md").read_text().split("\n## CDS Hooks 2.0\n")[0]


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_intake_app())


def test_the_curl_bundle_of_the_doc_posts(client: TestClient, settings: Settings) -> None:
    (body,) = re.findall(r"-d '(\{.*?\})'\n```", DOC, flags=re.DOTALL)
    response = post_bundle(client, settings, json.loads(body))
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK", "201 Created", "201 Created"]


def test_the_medication_examples_give_the_mme_the_doc_says(client: TestClient, settings: Settings) -> None:
    resources = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", DOC, flags=re.DOTALL)]
    assert [r["resourceType"] for r in resources] == ["MedicationRequest", "MedicationRequest"]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r} for r in resources]}
    assert post_bundle(client, settings, bundle).status_code == 200
    with UnitOfWork(settings, read_only=True) as uow:
        mme = sorted(data["mme_per_day"] for data in uow.session.execute(select(PatientUpdate.data)).scalars())
    assert mme == [30.0, 180.0]
