"""Responses are not cached (Cache-Control: no-store on API JSON, errors, worklist pages, the feed),
HSTS is sent over TLS only (the request's scheme, or a trusted proxy's X-Forwarded-Proto), and the
embedded database, broker folders and key files are readable by the service's user only."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from shared import token_keys
from shared.auth import FEED, create_token
from shared.messaging.celery_app import get_celery
from shared.settings import Settings, get_settings
from tests.integration.security.conftest import ORG, client_for
from tests.integration.security.test_route_authentication import operations

pytestmark = pytest.mark.integration


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_get_route_answers_no_store(
    apps: dict[str, FastAPI], bearer: Any, seeded: dict[str, str], settings: Settings
) -> None:
    feed = create_token(settings, ORG, "coordinator", typ=FEED)
    for app in apps.values():
        client = client_for(app)
        for method, path, _ in operations(app):
            if method != "GET":
                continue
            url = path.format(**seeded, endpoint_id=seeded["reminder_id"])
            params = {"token": feed} if path.endswith(".ics") else {}
            for headers in ({}, bearer("ops")):  # the 401 and the answer
                response = client.get(url, headers=headers, params=params)
                assert response.headers.get("cache-control") == "no-store", (path, response.status_code)
                assert response.headers.get("x-content-type-options") == "nosniff", path
        # Errors too: 404, 405 and 422.
        assert client.get("/no-such-route").headers["cache-control"] == "no-store"
        assert client.put("/healthz").headers["cache-control"] == "no-store"


def test_hsts_over_tls_only(
    apps: dict[str, FastAPI], bearer: Any, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    for app in apps.values():
        plain = client_for(app)
        assert "strict-transport-security" not in plain.get("/healthz").headers
        tls = client_for(app, base_url="https://testserver")
        hsts = tls.get("/healthz").headers["strict-transport-security"]
        assert re.fullmatch(r"max-age=\d{8,}; includeSubDomains", hsts)
        assert "strict-transport-security" in tls.get("/openapi.json").headers
        # A forwarded scheme counts only when the proxy is trusted by setting.
        forwarded = {"X-Forwarded-Proto": "https"}
        assert "strict-transport-security" not in plain.get("/healthz", headers=forwarded).headers
    monkeypatch.setenv("CAREPATH_TRUST_FORWARDED_PROTO", "true")
    get_settings.cache_clear()
    for app in apps.values():
        plain = client_for(app)
        assert "strict-transport-security" in plain.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers
        assert "strict-transport-security" not in plain.get("/healthz", headers={"X-Forwarded-Proto": "http"}).headers


def test_worklist_cookies_are_secure_behind_a_trusted_tls_proxy(
    notifications_app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_TRUST_FORWARDED_PROTO", "true")
    get_settings.cache_clear()
    client = client_for(notifications_app)
    page = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in page.headers["set-cookie"].lower()
    assert page.headers["cache-control"] == "no-store"
    # The session cookie too (here through the development sign-in; the OIDC callback sets it the same way),
    # in a client that sends Secure cookies back (https).
    tls = client_for(notifications_app, base_url="https://testserver")
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', tls.get("/login").text)
    assert match
    token = create_token(get_settings(), "org-sec", "coordinator")
    signed_in = tls.post("/login", data={"token": token, "csrf_token": match.group(1)})
    assert signed_in.status_code == 303
    session = next(h for h in signed_in.headers.get_list("set-cookie") if h.startswith("carepath_session="))
    assert "secure" in session.lower() and "httponly" in session.lower() and "samesite=lax" in session.lower()


def test_embedded_files_are_private(settings: Settings, backend: str) -> None:
    token_keys.keys(settings)  # the development signing key
    settings.signing_key()  # the development service secret
    assert _mode(settings.var_dir / token_keys.DEV_KEY_FILE) == 0o600
    assert _mode(settings.var_dir / "secret.key") == 0o600
    assert _mode(settings.var_dir) == 0o700
    if backend != "sqlite":
        return
    database = Path(settings.effective_database_url.removeprefix("sqlite:///"))
    assert database.exists()
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            assert _mode(path) == 0o600, path
    get_celery()  # the embedded broker's folders
    broker = settings.var_dir.resolve() / "broker"
    for folder in (broker, broker / "data", broker / "control"):
        assert _mode(folder) == 0o700, folder


def test_an_existing_laxer_database_file_is_tightened(tmp_path: Path) -> None:
    from shared.db.engine import get_engine

    loose = tmp_path / "shared-folder"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    database = loose / "old.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    engine = get_engine(f"sqlite:///{database}")
    with engine.connect():
        pass
    engine.dispose()
    assert _mode(database) == 0o600
    assert _mode(loose) == 0o755  # a folder the operator chose is left alone
