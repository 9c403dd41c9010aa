"""Benchmark of the CDS Hooks order-sign service for a patient with a 200-update history.

Run: .venv/bin/python bench/bench_cds.py [--runs 300] [--backend sqlite|pg]
In-process: the intake app through FastAPI's TestClient (no network, no uvicorn), a fresh SQLite database in
a temporary folder (or, --backend pg, a fresh database on the local PostgreSQL). Each call carries a fresh
ES256 client JWT (minted before the clock starts): the time covers JWT verification, the jti record, loading
the patient's facts, two evaluations (without and with the draft), the cards. Target: p95 < 500 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bench.bench_engine import realistic_patient

URL = "http://testserver/cds-services/carepath-order-sign"
ISSUER = "https://ehr.example.org/bench"


def _configure(folder: Path, backend: str) -> object:
    os.environ["CAREPATH_VAR_DIR"] = str(folder / "var")
    if backend == "pg":
        from shared.testing import REDIS_URL, fresh_postgres_database

        context = fresh_postgres_database()
        os.environ["CAREPATH_DATABASE_URL"] = context.__enter__()
        os.environ["CAREPATH_BROKER_URL"] = REDIS_URL
    else:
        from shared.testing import sqlite_url

        context = None
        os.environ["CAREPATH_DATABASE_URL"] = sqlite_url(folder / "var")
        os.environ["CAREPATH_BROKER_URL"] = "filesystem://"
    from shared.db.schema import upgrade
    from shared.settings import get_settings

    get_settings.cache_clear()
    upgrade(get_settings().effective_database_url)
    return context


def order_sign_body(patient_ref: str = "Patient/bench-1") -> dict:
    """A draft fentanyl 75 mcg/h patch with a prefetched temazepam order (see docs/performance.md)."""
    patch = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "197696",
                    "display": "72 HR Fentanyl 0.075 MG/HR Transdermal System",
                }
            ]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 3, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "patch", "code": "{patch}"}}],
            }
        ],
    }
    benzo = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-01-05",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "104693",
                    "display": "Temazepam 20 MG Oral Tablet",
                }
            ]
        },
    }
    body = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/1",
            "patientId": patient_ref,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patch}]},
        },
        "prefetch": {"patient": None, "medications": {"resourceType": "Bundle", "entry": [{"resource": benzo}]}},
    }
    return body


def client_jwt(key: ec.EllipticCurvePrivateKey, url: str = URL) -> str:
    """A fresh ES256 client JWT (new jti) for the CDS client registered by the benchmark."""
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "sub": "bench",
        "aud": url,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench"})


def register_client(org: str) -> ec.EllipticCurvePrivateKey:
    """Register a CDS client of `org` with an inline JWKS (in the configured database); returns its key."""
    from services.pathway.cds.clients import register

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "bench", "alg": "ES256"}
    register(org, ISSUER, None, {"keys": [jwk]})
    return key


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "pg"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        context = _configure(Path(tmp), args.backend)
        try:
            return _run(args, Path(tmp))
        finally:
            if context is not None:
                context.__exit__(None, None, None)  # type: ignore[attr-defined]


def _run(args: argparse.Namespace, folder: Path) -> int:
    from fastapi.testclient import TestClient

    from carepath.apps import create_intake_app
    from services.pathway.handler import evaluate_patient
    from shared.auth import create_token
    from shared.db.uow import UnitOfWork
    from shared.settings import get_settings

    settings = get_settings()
    client = TestClient(create_intake_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    patient_id = client.post("/v1/patients", json={"external_id": "bench-1"}, headers=headers).json()["id"]
    facts = realistic_patient(args.updates)
    updates = [{"type": f.type, "occurred_at": f.occurred_at.isoformat(), "data": dict(f.data)} for f in facts]
    posted = client.post(f"/v1/patients/{patient_id}/updates:batch", json={"updates": updates}, headers=headers)
    assert posted.status_code == 202, posted.text
    with UnitOfWork(settings) as uow:
        evaluate_patient(uow, patient_id, "update")
        uow.commit()
    key = register_client("org-a")

    body = order_sign_body()

    def token() -> str:
        return client_jwt(key)

    warm = client.post(URL, json=body, headers={"Authorization": f"Bearer {token()}"})
    assert warm.status_code == 200, warm.text
    cards = len(warm.json()["cards"])
    tokens = [token() for _ in range(args.runs)]
    times = []
    for value in tokens:
        start = time.perf_counter()
        response = client.post(URL, json=body, headers={"Authorization": f"Bearer {value}"})
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"order-sign, {args.updates} updates, {args.runs} runs, backend {args.backend}, {cards} cards: "
        f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"
    )
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
