"""Fixtures of the sign-in tests: the notifications app in process, a real OpenID Connect provider on
loopback (tests/support/oidc_provider.py, a subprocess) configured for org-oidc with `carepath oidc set`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_notifications_app
from carepath.cli import main as carepath_main
from services.notifications.web import oidc
from shared.settings import Settings
from tests.support.provider_process import Provider, oidc_provider

ORG = "org-oidc"
BASE = "http://testserver"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(f"{BASE}/login/callback", tmp_path_factory.mktemp("oidc")) as running:
        yield running


@pytest.fixture
def configured(settings: Settings, provider: Provider) -> Provider:
    oidc.clear_caches()
    provider.control(user={"sub": "coordinator-1", "groups": ["carepath-coordinators"]}, tamper={})
    argv = ["oidc", "set", "--org", ORG, "--issuer", provider.issuer, "--client-id", provider.client_id]
    argv += ["--client-secret", provider.client_secret, "--role-claim", "groups"]
    argv += ["--map", "carepath-coordinators=coordinator", "--map", "carepath-ops=ops"]
    assert carepath_main(argv) == 0
    return provider


@pytest.fixture
def web(settings: Settings) -> TestClient:
    return TestClient(create_notifications_app(), base_url=BASE, raise_server_exceptions=False, follow_redirects=False)
