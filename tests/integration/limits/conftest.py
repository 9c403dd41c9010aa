"""Fixtures of the abuse-limit tests: settings changed for one test, both HTTP apps, tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app, create_notifications_app
from shared.settings import Settings, get_settings

Configure = Callable[..., Settings]


@pytest.fixture
def configure(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Set CAREPATH_<NAME> variables for this test and return the settings the code now sees."""

    def apply(**values: object) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(f"CAREPATH_{name.upper()}", str(value))
        get_settings.cache_clear()
        return get_settings()

    return apply


@pytest.fixture
def intake(settings: Settings) -> TestClient:
    return TestClient(create_intake_app(), raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def notifications(settings: Settings) -> TestClient:
    return TestClient(create_notifications_app(), raise_server_exceptions=False, follow_redirects=False)
