"""Fixtures of the CDS Hooks tests: the intake app, a loopback FHIR/JWKS server, registered CDS clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app
from shared.settings import Settings
from tests.integration.cds.cds_support import ISSUER, Keys, Loopback, register, serve_loopback

OTHER_ORG_ISSUER = "https://other-hospital.example.org/ehr"
INLINE_ISSUER = "https://ehr.example.org/inline-client"


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def loopback(keys: Keys) -> Iterator[Loopback]:
    for state in serve_loopback():
        state.jwks = keys.rsa_jwks()
        yield state


@pytest.fixture
def client(settings: Settings, loopback: Loopback, keys: Keys, tmp_path: Path) -> TestClient:
    loopback.medications.clear()
    loopback.seen.clear()
    jwks_url = f"{loopback.url}/jwks.json"
    register(["--org", "org-a", "--issuer", ISSUER, "--jwks-url", jwks_url, "--fhir-server", f"{loopback.url}/fhir/"])
    register(["--org", "org-b", "--issuer", OTHER_ORG_ISSUER, "--jwks-url", jwks_url])
    jwk_file = tmp_path / "ec.jwk.json"
    jwk_file.write_text(json.dumps(keys.ec_jwk()))
    register(["--org", "org-a", "--issuer", INLINE_ISSUER, "--jwk-file", str(jwk_file)])
    return TestClient(create_intake_app())
