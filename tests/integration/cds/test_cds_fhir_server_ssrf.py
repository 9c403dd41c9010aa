"""CDS Hooks `fhirServer` (SSRF): carepath fetches only from a FHIR server on the calling CDS client's
allow-list (`carepath cds-client register --fhir-server`), through the outbound address filter unless the
address itself is the one listed; anything else is answered from prefetch and what carepath knows, with no
connection made. And the audit rows of CDS calls and feedback carry the patient id."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carepath.cli import main as carepath_main
from services.pathway.cds import service
from shared import audit
from shared.db.tables import AuditEvent, CdsFeedback
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings
from tests.integration.cds.cds_support import (
    ISSUER,
    TEMAZEPAM,
    Keys,
    Loopback,
    bearer,
    call,
    carepath_auth,
    codes,
    fentanyl_draft,
    first_line_history,
    medication_request,
    order_sign,
    register,
    seed_patient,
)
from tests.integration.cds.test_cds_auth_feedback import URL, _reminder, feedback, view

pytestmark = pytest.mark.integration
BENZO = "opioid_benzodiazepine_coprescription"


def _with_server(loopback: Loopback, fhir_id: str, base: str) -> dict[str, Any]:
    auth = {"access_token": loopback.token, "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "c"}
    return order_sign(fhir_id, fentanyl_draft(), fhirServer=base, fhirAuthorization=auth)


@pytest.fixture
def remote_patient(client: TestClient, settings: Settings, loopback: Loopback) -> str:
    patient_id = seed_patient(client, settings, "pat-ssrf", first_line_history())
    loopback.medications["pat-ssrf"] = [medication_request(*TEMAZEPAM, dose=1, unit="{tablet}", id_="benzo")]
    return patient_id


def test_only_allowed_servers_are_fetched(
    client: TestClient, keys: Keys, loopback: Loopback, remote_patient: str
) -> None:
    allowed = f"{loopback.url}/fhir"
    assert BENZO in codes(call(client, keys, "carepath-order-sign", _with_server(loopback, "pat-ssrf", allowed)))
    assert len(loopback.seen) == 1
    loopback.seen.clear()
    for elsewhere in (
        f"{loopback.url}/other-fhir",  # same host, another base
        f"{loopback.url}/fhir/../jwks.json#",
        f"{loopback.url}/fhir.evil",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://localhost:1/fhir",
    ):
        found = codes(call(client, keys, "carepath-order-sign", _with_server(loopback, "pat-ssrf", elsewhere)))
        assert "naloxone_indicated" in found and BENZO not in found, elsewhere  # answered without the fetch
    assert loopback.seen == []


def test_carepath_token_callers_name_no_fhir_server(
    client: TestClient, settings: Settings, loopback: Loopback, remote_patient: str
) -> None:
    body = _with_server(loopback, "pat-ssrf", f"{loopback.url}/fhir")
    url = "http://testserver/cds-services/carepath-order-sign"
    response = client.post(url, json=body, headers=carepath_auth(settings))
    assert response.status_code == 200 and BENZO not in codes(response.json())
    assert loopback.seen == []


def test_the_address_filter_applies_unless_the_address_is_listed(
    client: TestClient, keys: Keys, loopback: Loopback, remote_patient: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_ALLOW_PRIVATE_WEBHOOKS", "false")
    get_settings.cache_clear()
    port = loopback.url.rsplit(":", 1)[1]
    by_name = f"http://localhost:{port}/fhir"  # a host name that resolves to loopback: filtered
    jwks_url = f"{loopback.url}/jwks.json"
    register(["--org", "org-a", "--issuer", ISSUER, "--jwks-url", jwks_url, "--fhir-server", by_name])
    found = codes(call(client, keys, "carepath-order-sign", _with_server(loopback, "pat-ssrf", by_name)))
    assert BENZO not in found and loopback.seen == []
    # The operator listed the address itself (an internal FHIR server by IP): that address is reached.
    listed = f"{loopback.url}/fhir"
    register(["--org", "org-a", "--issuer", ISSUER, "--jwks-url", jwks_url, "--fhir-server", listed])
    assert BENZO in codes(call(client, keys, "carepath-order-sign", _with_server(loopback, "pat-ssrf", listed)))
    assert len(loopback.seen) == 1


def test_registration_checks_the_fhir_servers(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["cds-client", "register", "--org", "org-a", "--issuer", ISSUER, "--jwks-url", "https://ehr.example/j"]
    for bad in ("ftp://fhir.example/r4", "https://user:pw@fhir.example/r4", "https://fhir.example/r4?x=1", "/fhir"):
        assert carepath_main([*base, "--fhir-server", bad]) == 2, bad
    assert (
        carepath_main([*base, "--fhir-server", "https://FHIR.example.org/R4/", "--fhir-server", "https://b.example"])
        == 0
    )
    assert '"fhir_servers": ["https://b.example", "https://fhir.example.org/R4"]' in capsys.readouterr().out


def _rows(settings: Settings, action: str) -> list[dict[str, Any]]:
    return [e for e in audit.export(settings) if e["action"] == action]


def test_cds_calls_are_audited_with_the_patient(
    client: TestClient, settings: Settings, keys: Keys, loopback: Loopback, remote_patient: str
) -> None:
    call(client, keys, "carepath-order-sign", copy.deepcopy(_with_server(loopback, "pat-ssrf", "https://x.example")))
    call(client, keys, "carepath-patient-view", view("pat-ssrf"))
    call(client, keys, "carepath-patient-view", view("nobody-we-know"))
    assert [r["patient_id"] for r in _rows(settings, "cds.carepath-order-sign")] == [remote_patient]
    assert [r["patient_id"] for r in _rows(settings, "cds.carepath-patient-view")] == [remote_patient, None]


def test_feedback_is_audited_in_the_transaction_of_the_feedback(
    client: TestClient, settings: Settings, keys: Keys, remote_patient: str
) -> None:
    reminder = _reminder(settings, remote_patient, "first_line_review", "due", 1)
    url = f"{URL}/feedback"
    from tests.integration.cds.cds_support import client_jwt

    body = feedback(reminder, "overridden", "dismiss_already_done")
    assert client.post(url, json=body, headers=bearer(client_jwt(keys, url))).status_code == 200
    [row] = _rows(settings, "cds.carepath-patient-view.feedback")
    assert row["patient_id"] == remote_patient and row["outcome"] == "success"
    assert row["resource_type"] is None

    # The audit row and the feedback commit together: an audit write that fails stores neither.
    principal = service.Principal(org="org-a", role="client", subject="cds:x", token_id="t" * 16)

    def failing(uow: UnitOfWork, patients: list[str]) -> None:
        audit.record(uow, principal, "cds.test", route="test", patient_ids=patients)
        raise RuntimeError("the audit write failed")

    with UnitOfWork(settings, read_only=True) as uow:
        before = uow.session.execute(select(func.count()).select_from(CdsFeedback)).scalar_one()
    with pytest.raises(RuntimeError):
        service.record_feedback(principal, service.PATIENT_VIEW, feedback(reminder, "accepted"), failing)
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(CdsFeedback)).scalar_one() == before
        assert uow.session.execute(select(AuditEvent).where(AuditEvent.action == "cds.test")).first() is None
