"""API tokens: the claims they carry, the lifetime the services enforce, type-checked claims, revocation
(CLI and worklist logout) seen at once by every process, and keys: kid, rollover, verify-only processes."""

from __future__ import annotations

import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app, create_notifications_app
from carepath.cli import main
from shared import sessions, token_keys
from shared.auth import FEED, create_token, decode_token
from shared.settings import Settings, get_settings
from tests.integration.security.conftest import ORG, client_for, forge

pytestmark = pytest.mark.integration
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out.strip(), err


def _status(token: str, path: str = "/v1/reminders") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return TestClient(create_notifications_app()).get(path, headers=headers).status_code


def test_cli_token_carries_the_claims_and_the_role_lifetime(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, token, _ = _cli(capsys, "token", "create", "--org", ORG, "--role", "coordinator")
    assert code == 0
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == token_keys.keys(settings).signing_kid
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "sub", "org", "role", "typ", "iat", "exp", "jti"} <= set(claims)
    assert claims["typ"] == "access" and claims["org"] == ORG and claims["role"] == "coordinator"
    assert claims["exp"] - claims["iat"] == 8 * 3600  # CAREPATH_TOKEN_MAX_HOURS
    assert _status(token) == 200
    _, client_token, _ = _cli(capsys, "token", "create", "--org", ORG, "--role", "client")
    client_claims = jwt.decode(client_token, options={"verify_signature": False})
    assert client_claims["exp"] - client_claims["iat"] == 720 * 3600  # CAREPATH_CLIENT_TOKEN_MAX_HOURS
    _, short, _ = _cli(capsys, "token", "create", "--org", ORG, "--role", "ops", "--hours", "0.5")
    short_claims = jwt.decode(short, options={"verify_signature": False})
    assert short_claims["exp"] - short_claims["iat"] == 1800
    # Longer than the maximum, or a malformed organisation: refused at minting.
    assert _cli(capsys, "token", "create", "--org", ORG, "--role", "ops", "--hours", "9")[0] == 2
    assert _cli(capsys, "token", "create", "--org", "a b", "--role", "ops")[0] == 2
    assert jwt.decode(token, options={"verify_signature": False})["jti"] != short_claims["jti"]


def test_the_maximum_lifetime_is_a_setting(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    forged = forge(
        settings, {"exp": int(jwt.decode(forge(settings, {}), options={"verify_signature": False})["iat"]) + 3 * 3600}
    )
    assert _status(forged) == 200  # 3 h: within the 8 h default
    monkeypatch.setenv("CAREPATH_TOKEN_MAX_HOURS", "2")
    get_settings.cache_clear()
    assert _status(forged) == 401
    with pytest.raises(ValueError):
        create_token(get_settings(), ORG, "ops", lifetime=timedelta(hours=3))


@pytest.mark.parametrize(
    "overrides",
    [
        {"org": ["org-a", "org-b"]},
        {"org": ""},
        {"org": "org a"},
        {"org": "../org-a"},
        {"org": {"id": ORG}},
        {"org": None},
        {"role": "admin"},
        {"role": ["ops"]},
        {"role": None},
        {"sub": 42},
        {"sub": ""},
        {"sub": None},
        {"iat": "1"},
        {"iat": True},
        {"iat": 1.5e9},
        {"iat": None},
        {"exp": "9999999999"},
        {"exp": None},
        {"jti": None},
        {"jti": 12345678901234567890},
        {"jti": "short"},
        {"typ": None},
        {"typ": "refresh"},
        {"iss": "someone-else"},
    ],
    ids=lambda overrides: ",".join(f"{k}={v!r}" for k, v in overrides.items()),
)
def test_claims_of_the_wrong_type_or_charset_are_refused(settings: Settings, overrides: dict[str, Any]) -> None:
    assert _status(forge(settings, {})) == 200  # the baseline claim set is accepted
    assert _status(forge(settings, overrides)) == 401


def test_iat_in_the_future_is_refused(settings: Settings) -> None:
    now = int(jwt.decode(forge(settings, {}), options={"verify_signature": False})["iat"])
    assert _status(forge(settings, {"iat": now + 3600, "exp": now + 3700})) == 401


def test_revoke_by_token_or_id_is_seen_at_once_by_every_process(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    intake, notifications = create_intake_app(), create_notifications_app()
    token = create_token(settings, ORG, "ops")
    other = create_token(settings, ORG, "ops")
    headers = {"Authorization": f"Bearer {token}"}
    assert TestClient(intake).post("/v1/patients", json={"external_id": "MRN-R1"}, headers=headers).status_code == 201
    assert TestClient(notifications).get("/v1/reminders", headers=headers).status_code == 200
    code, _, err = _cli(capsys, "token", "revoke", token)
    assert code == 0 and "revoked" in err
    assert TestClient(intake).post("/v1/patients", json={"external_id": "MRN-R2"}, headers=headers).status_code == 401
    assert TestClient(notifications).get("/v1/reminders", headers=headers).status_code == 401
    assert _status(other) == 200  # only that token
    # By its id alone (what an audit log or the holder can tell), and idempotently.
    jti = decode_token(settings, other).token_id
    assert _cli(capsys, "token", "revoke", jti)[0] == 0
    assert _cli(capsys, "token", "revoke", jti)[0] == 0
    assert _status(other) == 401
    # A feed token is revoked the same way.
    feed = create_token(settings, ORG, "coordinator", typ=FEED)
    client = TestClient(notifications)
    assert client.get("/v1/reminders.ics", params={"token": feed}).status_code == 200
    assert _cli(capsys, "token", "revoke", feed)[0] == 0
    assert client.get("/v1/reminders.ics", params={"token": feed}).status_code == 401
    # Something that is not ours is refused, not recorded.
    stranger = forge(settings, {}, key=Ed25519PrivateKey.generate())
    assert _cli(capsys, "token", "revoke", stranger)[0] == 2
    assert _cli(capsys, "token", "revoke", "no spaces allowed")[0] == 2


def test_worklist_logout_ends_the_server_side_session(settings: Settings) -> None:
    """The development paste-a-token sign-in opens a server-side session: the browser holds a random
    session id, never the token, and logout deletes the session so a copy of the cookie is dead."""
    token = create_token(settings, ORG, "coordinator")
    browser = client_for(create_notifications_app())
    page = browser.get("/login")
    match = CSRF.search(page.text)
    assert match
    assert browser.post("/login", data={"token": token, "csrf_token": match.group(1)}).status_code == 303
    secret = browser.cookies.get(sessions.COOKIE)
    assert secret and secret != token and "carepath_token" not in browser.cookies
    worklist = browser.get("/worklist")
    assert worklist.status_code == 200
    match = CSRF.search(worklist.text)
    assert match
    response = browser.post("/logout", data={"csrf_token": match.group(1)})
    assert response.status_code == 303 and response.headers["location"] == "/login?flash=logged_out"
    copy = client_for(create_notifications_app())
    copy.cookies.set(sessions.COOKIE, secret)
    assert copy.get("/worklist").headers["location"] == "/login"
    assert sessions.current(settings, secret) is None


def test_key_rollover_and_verify_only_processes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_token = create_token(settings, ORG, "ops")  # signed by the development key
    old_public = token_keys.public_pem(token_keys.keys(settings).verifying[jwt.get_unverified_header(old_token)["kid"]])
    new_key = tmp_path / "keys" / "signing.pem"
    code, new_public, _ = _cli(capsys, "token", "keygen", "--out", str(new_key))
    assert code == 0 and new_public.startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600
    assert _cli(capsys, "token", "keygen", "--out", str(new_key))[0] == 2  # never overwritten

    # Rollover: the new key signs, the old public key still verifies.
    monkeypatch.setenv("CAREPATH_TOKEN_SIGNING_KEY", str(new_key))
    monkeypatch.setenv("CAREPATH_TOKEN_VERIFY_KEYS", old_public)
    get_settings.cache_clear()
    new_token = create_token(get_settings(), ORG, "ops")
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    assert _status(new_token) == 200 and _status(old_token) == 200

    # A verify-only process (the HTTP services): public keys only. It accepts both, mints nothing.
    monkeypatch.delenv("CAREPATH_TOKEN_SIGNING_KEY")
    monkeypatch.setenv("CAREPATH_TOKEN_VERIFY_KEYS", new_public + "\n" + old_public)
    get_settings.cache_clear()
    assert _status(new_token) == 200 and _status(old_token) == 200
    with pytest.raises(token_keys.KeyConfigurationError):
        create_token(get_settings(), ORG, "ops")

    # After the rollover the old key is dropped: its tokens are refused.
    monkeypatch.setenv("CAREPATH_TOKEN_VERIFY_KEYS", new_public)
    get_settings.cache_clear()
    assert _status(new_token) == 200 and _status(old_token) == 401
    # A private key where public ones belong is a configuration error, not silently accepted.
    monkeypatch.setenv("CAREPATH_TOKEN_VERIFY_KEYS", new_key.read_text())
    get_settings.cache_clear()
    with pytest.raises(token_keys.KeyConfigurationError):
        token_keys.keys(get_settings())


def test_outside_development_keys_are_required(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_ENV", "production")
    get_settings.cache_clear()
    with pytest.raises(RuntimeError):
        create_token(get_settings(), ORG, "ops")
    monkeypatch.setenv("CAREPATH_SECRET_KEY", "x" * 40)  # compose: one trust domain, the pair is derived
    get_settings.cache_clear()
    token = create_token(get_settings(), ORG, "ops")
    assert _status(token) == 200
    development = Settings(env="development", secret_key="", var_dir=settings.var_dir)
    dev_token = create_token(development, ORG, "ops")  # signed by the development key file
    assert _status(dev_token) == 401
