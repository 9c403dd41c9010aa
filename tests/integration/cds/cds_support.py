"""Helpers of the CDS Hooks tests: a real loopback server (the EHR's FHIR server and the CDS client's JWKS),
CDS client keys and JWTs, patients seeded through the native API and evaluated in process."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from carepath.cli import main as carepath_main
from services.pathway.cds.cards import response_problems
from services.pathway.handler import evaluate_patient
from shared.auth import create_token
from shared.db.uow import UnitOfWork
from shared.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "opioid-cds" / "cds-examples"
BASE = "http://testserver/cds-services"
ISSUER = "https://ehr.example.org/cds-client"


def example(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return found


@dataclass
class Loopback:
    """What the loopback server serves and saw."""

    url: str
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    medications: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # FHIR patient id -> resources
    token: str = "ehr-access-token"
    seen: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0


def _app(state: Loopback) -> FastAPI:
    app = FastAPI()

    @app.get("/jwks.json")
    def jwks() -> Any:
        return state.jwks

    @app.get("/fhir/MedicationRequest")
    def search(request: Request) -> Any:
        state.seen.append({"params": dict(request.query_params), "auth": request.headers.get("authorization")})
        if state.delay:
            time.sleep(state.delay)
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        patient = request.query_params.get("patient", "").removeprefix("Patient/")
        entries = [
            {"resource": r, "search": {"mode": "match"}}
            for r in state.medications.get(patient, [])
            if r.get("status") == request.query_params.get("status", r.get("status"))
        ]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    return app


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_loopback() -> Iterator[Loopback]:
    port = _free_port()
    state = Loopback(url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "loopback server did not start"
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(5)


class Keys:
    """A CDS client's RSA key (served from the loopback JWKS) and an EC key (registered inline)."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # nobody registered it

    def rsa_jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        return {"keys": [{**jwk, "kid": "rsa-1", "alg": "RS384", "use": "sig"}]}

    def ec_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {**jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"}


def client_jwt(
    keys: Keys,
    aud: str,
    *,
    issuer: str = ISSUER,
    lifetime: timedelta = timedelta(minutes=5),
    issued: datetime | None = None,
    jti: str | None = None,
    key: str = "rsa",
) -> str:
    now = issued or datetime.now(UTC)
    claims = {
        "iss": issuer,
        "sub": "ehr-client-1",
        "aud": aud,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": jti or str(uuid.uuid4()),
    }
    if key == "ec":
        return jwt.encode(claims, keys.ec, algorithm="ES256", headers={"kid": "ec-1", "typ": "JWT"})
    signer = keys.other if key == "other" else keys.rsa
    return jwt.encode(claims, signer, algorithm="RS384", headers={"kid": "rsa-1", "typ": "JWT"})


def register(args: list[str]) -> None:
    assert carepath_main(["cds-client", "register", *args]) == 0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def carepath_auth(settings: Settings, org: str = "org-a", role: str = "client") -> dict[str, str]:
    return bearer(create_token(settings, org, role))


def call(client: TestClient, keys: Keys, service: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a CDS request with a fresh client JWT; the answer must be a valid CDS Hooks response."""
    url = f"{BASE}/{service}"
    response = client.post(url, json=body, headers=bearer(client_jwt(keys, url)))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert response_problems(answer) == [], response_problems(answer)
    return answer


def at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")


def first_line_history() -> list[dict[str, Any]]:
    """A laminectomy 90 days ago, the initial evaluation complete since 60 days: the patient is in first line."""
    return [
        {"type": "surgery", "occurred_at": at(90), "data": {"procedure": "laminectomy"}},
        {"type": "imaging", "occurred_at": at(60), "data": {"modality": "mri", "findings": ["no_surgical_target"]}},
        {"type": "neuro_exam", "occurred_at": at(60), "data": {"progressive_deficit": False}},
        {"type": "pain_assessment", "occurred_at": at(60), "data": {"pain_nrs": 7, "distribution": "axial"}},
    ]


def seed_patient(
    client: TestClient, settings: Settings, external_id: str, updates: list[dict[str, Any]], org: str = "org-a"
) -> str:
    headers = carepath_auth(settings, org)
    created = client.post("/v1/patients", json={"external_id": external_id}, headers=headers)
    assert created.status_code == 201, created.text
    patient_id: str = created.json()["id"]
    if updates:
        posted = client.post(f"/v1/patients/{patient_id}/updates:batch", json={"updates": updates}, headers=headers)
        assert posted.status_code == 202, posted.text
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "update")
        uow.commit()
    return patient_id


def medication_request(
    rxnorm: str,
    display: str,
    *,
    dose: float,
    unit: str,
    per_days: float = 1.0,
    status: str = "active",
    id_: str = "mr-1",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": id_,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": display}]
        },
        "subject": {"reference": "Patient/p"},
        "authoredOn": datetime.now(UTC).date().isoformat(),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": per_days, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "code": unit}}],
            }
        ],
    }


FENTANYL_75 = ("197696", "72 HR Fentanyl 0.075 MG/HR Transdermal System")
TEMAZEPAM = ("104693", "Temazepam 20 MG Oral Tablet")


def fentanyl_draft(id_: str = "draft-1") -> dict[str, Any]:
    """A fentanyl 75 mcg/h patch, one patch every 3 days: 75 × 2.4 = 180 MME/day."""
    resource = medication_request(*FENTANYL_75, dose=1, unit="{patch}", per_days=3, status="draft", id_=id_)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}


def order_sign(
    fhir_id: str, draft: dict[str, Any], prefetch: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": f"Patient/{fhir_id}", "draftOrders": draft},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def codes(answer: dict[str, Any]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in answer["cards"]]
