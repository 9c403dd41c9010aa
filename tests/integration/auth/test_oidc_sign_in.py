"""Worklist sign-in through a real OpenID Connect provider on loopback (Authlib's server side in a
subprocess): authorization code + PKCE, the ID token checks, the server-side session (idle and absolute
timeouts, rotation, logout, revocation) and the audit rows of every outcome."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.cli import main as carepath_main
from shared import audit
from shared.auth import create_token
from shared.clock import utcnow
from shared.db.tables import OidcProvider, WorklistSession
from shared.db.uow import UnitOfWork
from shared.sessions import COOKIE
from shared.settings import Settings, get_settings
from tests.integration.auth.conftest import BASE, ORG
from tests.support.provider_process import Provider

pytestmark = pytest.mark.integration
PRE_LOGIN = "carepath_signin"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def start(web: TestClient, org: str = ORG) -> str:
    response = web.get("/login/start", params={"org": org})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def authorize(url: str) -> str:
    """The provider's answer to the browser: a redirect back to our callback (path and query)."""
    response = httpx.get(url, follow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{BASE}/login/callback?"), location
    return location[len(BASE) :]


def sign_in(web: TestClient) -> httpx.Response:
    return web.get(authorize(start(web)))


def signin_rows(settings: Settings) -> list[dict[str, object]]:
    return [e for e in audit.export(settings) if e["action"] == "auth.signin"]


def test_sign_in_opens_a_server_side_session(settings: Settings, configured: Provider, web: TestClient) -> None:
    url = start(web)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{configured.issuer}/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["response_type"] == ["code"] and query["client_id"] == [configured.client_id]
    assert query["nonce"][0] and query["state"][0] and "openid" in query["scope"][0].split()
    pre_login = web.cookies.get(PRE_LOGIN)
    assert pre_login and query["state"][0] not in pre_login  # sealed, not readable

    callback = web.get(authorize(url))
    assert callback.status_code == 303 and callback.headers["location"] == "/worklist"
    set_cookie = callback.headers.get_list("set-cookie")
    session_header = next(h for h in set_cookie if h.startswith(f"{COOKIE}="))
    assert "HttpOnly" in session_header and "samesite=lax" in session_header.lower()
    assert "Secure" not in session_header  # plain http here (Secure over TLS: test_headers_and_files)
    assert any(h.startswith(f'{PRE_LOGIN}=""') for h in set_cookie)  # the pre-login cookie is spent
    secret = web.cookies.get(COOKIE)
    assert secret

    page = web.get("/worklist")
    assert page.status_code == 200 and ORG in page.text and "coordinator" in page.text
    with UnitOfWork(settings, read_only=True) as uow:
        rows = [
            (r.id, r.subject, r.role, r.method, r.secret_hash)
            for r in uow.session.execute(select(WorklistSession)).scalars()
        ]
    assert len(rows) == 1
    session_id, subject, role, method, secret_hash = rows[0]
    assert (subject, role, method) == ("coordinator-1", "coordinator", "oidc")
    assert secret_hash != secret and secret not in secret_hash
    [row] = signin_rows(settings)
    assert row["outcome"] == "success" and row["actor"] == "coordinator:coordinator-1" and row["org"] == ORG
    assert row["resource_type"] == "session" and row["resource_id"] == session_id
    assert row["route"] == "GET /login/callback"


def test_the_client_secret_is_encrypted_at_rest(settings: Settings, configured: Provider) -> None:
    with UnitOfWork(settings, read_only=True) as uow:
        stored = uow.session.get(OidcProvider, ORG)
        assert stored is not None
        assert configured.client_secret not in stored.client_secret_encrypted
        assert stored.role_map == {"carepath-coordinators": "coordinator", "carepath-ops": "ops"}


def test_ops_group_maps_to_ops(settings: Settings, configured: Provider, web: TestClient) -> None:
    configured.control(user={"sub": "ops-7", "groups": ["staff", "carepath-ops", "carepath-coordinators"]})
    assert sign_in(web).status_code == 303
    assert signin_rows(settings)[-1]["actor"] == "ops:ops-7"


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ({"nonce": "someone-elses-nonce"}, 401),
        ({"aud": "another-client"}, 401),
        ({"exp_offset": -3600}, 401),
        ({"other_key": True}, 401),
    ],
    ids=["wrong nonce", "wrong audience", "expired id token", "signed by another key"],
)
def test_bad_id_tokens_are_refused(
    settings: Settings, configured: Provider, web: TestClient, tamper: dict[str, object], status: int
) -> None:
    configured.control(tamper=tamper)
    response = sign_in(web)
    assert response.status_code == status, response.text
    assert COOKIE not in web.cookies
    assert "did not confirm who you are" in response.text
    [row] = signin_rows(settings)
    assert row["outcome"] == "denied" and row["status_code"] == status and row["org"] == ORG
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.execute(select(WorklistSession)).first() is None


def test_wrong_state_is_refused(settings: Settings, configured: Provider, web: TestClient) -> None:
    callback = authorize(start(web))
    forged = re.sub(r"state=[^&]+", "state=forged-state-value", callback)
    response = web.get(forged)
    assert response.status_code == 400 and COOKIE not in web.cookies
    assert signin_rows(settings)[-1]["status_code"] == 400


def test_callback_without_the_pre_login_cookie_is_refused(
    settings: Settings, configured: Provider, web: TestClient
) -> None:
    """A callback URL carried to another browser (login CSRF, a stolen code) opens nothing."""
    callback = authorize(start(web))
    web.cookies.clear()
    assert web.get(callback).status_code == 400
    assert COOKIE not in web.cookies
    assert signin_rows(settings)[-1]["outcome"] == "denied"


def test_replayed_code_is_refused(settings: Settings, configured: Provider, web: TestClient) -> None:
    callback = authorize(start(web))
    pre_login = web.cookies.get(PRE_LOGIN)
    assert web.get(callback).status_code == 303
    attacker = TestClient(web.app, base_url=BASE, raise_server_exceptions=False, follow_redirects=False)
    attacker.cookies.set(PRE_LOGIN, pre_login)  # even with the victim's pre-login cookie
    response = attacker.get(callback)
    assert response.status_code == 401 and COOKIE not in attacker.cookies
    assert [r["outcome"] for r in signin_rows(settings)] == ["success", "denied"]


def test_an_unmapped_role_is_refused(settings: Settings, configured: Provider, web: TestClient) -> None:
    configured.control(user={"sub": "clerk-2", "groups": ["carepath-readers"]})
    response = sign_in(web)
    assert response.status_code == 403 and "no worklist role" in response.text
    assert COOKIE not in web.cookies
    row = signin_rows(settings)[-1]
    assert row["outcome"] == "denied" and row["status_code"] == 403


def test_the_provider_saying_no_is_refused(settings: Settings, configured: Provider, web: TestClient) -> None:
    state = parse_qs(urlsplit(start(web)).query)["state"][0]
    response = web.get("/login/callback", params={"error": "access_denied", "state": state})
    assert response.status_code == 401 and COOKIE not in web.cookies


def test_unknown_organisation_has_no_sign_in(settings: Settings, configured: Provider, web: TestClient) -> None:
    response = web.get("/login/start", params={"org": "org-nobody"})
    assert response.status_code == 404 and PRE_LOGIN not in web.cookies
    assert web.get("/login", params={"org": "org-nobody"}).status_code == 404
    page = web.get("/login", params={"org": ORG})
    assert page.status_code == 200 and f'href="/login/start?org={ORG}"' in page.text


def test_a_planted_cookie_never_becomes_a_session(settings: Settings, configured: Provider, web: TestClient) -> None:
    """Session fixation: whatever cookie the browser had before, sign-in issues a new one and ends the old."""
    web.cookies.set(COOKIE, "planted-by-an-attacker-0123456789abcdef", domain="testserver.local", path="/")
    assert sign_in(web).status_code == 303
    first = web.cookies.get(COOKIE)
    assert first and first != "planted-by-an-attacker-0123456789abcdef"
    assert sign_in(web).status_code == 303
    second = web.cookies.get(COOKIE)
    assert second and second != first
    old = TestClient(web.app, base_url=BASE, raise_server_exceptions=False, follow_redirects=False)
    old.cookies.set(COOKIE, first)
    assert old.get("/worklist").headers["location"] == "/login"  # the session it replaced is gone
    assert web.get("/worklist").status_code == 200
    with UnitOfWork(settings, read_only=True) as uow:
        assert len(list(uow.session.execute(select(WorklistSession)).scalars())) == 1


def test_idle_timeout(settings: Settings, configured: Provider, web: TestClient) -> None:
    assert sign_in(web).status_code == 303
    with time_machine.travel(utcnow() + timedelta(minutes=get_settings().session_idle_minutes - 1), tick=False):
        assert web.get("/worklist").status_code == 200  # used: the idle clock restarts
    later = utcnow() + timedelta(minutes=2 * get_settings().session_idle_minutes - 3)
    with time_machine.travel(later, tick=False):
        assert web.get("/worklist").status_code == 200
    with time_machine.travel(later + timedelta(minutes=get_settings().session_idle_minutes + 1), tick=False):
        response = web.get("/worklist")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    refused = [e for e in audit.export(settings) if e["action"] == "auth.refused"]
    assert refused and refused[-1]["status_code"] == 401 and refused[-1]["route"] == "GET /worklist"


def test_absolute_timeout(settings: Settings, configured: Provider, web: TestClient) -> None:
    assert sign_in(web).status_code == 303
    began = utcnow()
    step = timedelta(minutes=20)
    absolute = timedelta(hours=get_settings().session_absolute_hours)
    moment = began
    while moment + step < began + absolute:
        moment += step
        with time_machine.travel(moment, tick=False):
            assert web.get("/worklist").status_code == 200, moment - began  # active all day
    with time_machine.travel(began + absolute + timedelta(seconds=5), tick=False):
        assert web.get("/worklist").headers["location"] == "/login"


def test_logout_deletes_the_session_everywhere(settings: Settings, configured: Provider, web: TestClient) -> None:
    assert sign_in(web).status_code == 303
    secret = web.cookies.get(COOKIE)
    page = web.get("/worklist")
    match = CSRF.search(page.text)
    assert match
    logout = web.post("/logout", data={"csrf_token": match.group(1)})
    assert logout.status_code == 303 and logout.headers["location"].startswith("/login")
    copy = TestClient(web.app, base_url=BASE, raise_server_exceptions=False, follow_redirects=False)
    copy.cookies.set(COOKIE, secret)
    assert copy.get("/worklist").headers["location"] == "/login"
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.execute(select(WorklistSession)).first() is None
    assert [e["action"] for e in audit.export(settings) if e["action"].startswith("auth.sign")][-1] == "auth.signout"


@pytest.mark.parametrize("how", ["id", "subject", "org"])
def test_revoked_sessions_are_refused_at_once(
    settings: Settings, configured: Provider, web: TestClient, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sign_in(web).status_code == 303
    assert web.get("/worklist").status_code == 200
    assert carepath_main(["session", "list", "--org", ORG]) == 0
    listed = capsys.readouterr().out
    session_id = re.search(r'"id": "([0-9a-f-]{36})"', listed)
    assert session_id and web.cookies.get(COOKIE) not in listed
    argv = {
        "id": ["--id", session_id.group(1)],
        "subject": ["--subject", "coordinator-1", "--org", ORG],
        "org": ["--org", ORG],
    }[how]
    assert carepath_main(["session", "revoke", *argv]) == 0
    assert "1 session(s) revoked" in capsys.readouterr().out
    assert web.get("/worklist").headers["location"] == "/login"
    assert carepath_main(["session", "revoke"]) == 2  # no filter: refused, not "everything"


def test_the_api_and_the_feed_ignore_session_cookies(settings: Settings, configured: Provider, web: TestClient) -> None:
    assert sign_in(web).status_code == 303
    assert web.get("/worklist").status_code == 200
    assert web.get("/v1/reminders").status_code == 401
    assert web.get("/v1/reminders.ics").status_code == 401
    bearer = {"Authorization": f"Bearer {web.cookies.get(COOKIE)}"}
    assert web.get("/v1/reminders", headers=bearer).status_code == 401


def test_sign_in_callbacks_are_throttled(
    settings: Settings, configured: Provider, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_LOGIN_LIMIT_PER_CLIENT", "2/minute")
    get_settings.cache_clear()
    assert web.get("/login/callback", params={"code": "x", "state": "y"}).status_code == 400
    assert web.get("/login/callback", params={"code": "x", "state": "y"}).status_code == 400
    limited = web.get("/login/callback", params={"code": "x", "state": "y"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert [r["status_code"] for r in signin_rows(settings)] == [400, 400, 429]


def test_the_paste_form_is_for_development_only(
    settings: Settings, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = create_token(settings, ORG, "coordinator")
    page = web.get("/login")
    assert "Access token" in page.text
    match = CSRF.search(page.text)
    assert match
    response = web.post("/login", data={"token": token, "csrf_token": match.group(1)})
    assert response.status_code == 303
    assert web.cookies.get(COOKIE) and token not in (web.cookies.get(COOKIE) or "")
    with UnitOfWork(settings, read_only=True) as uow:
        [(method, org)] = [(r.method, r.org) for r in uow.session.execute(select(WorklistSession)).scalars()]
    assert method == "token" and org == ORG

    monkeypatch.setenv("CAREPATH_ENV", "production")
    monkeypatch.setenv("CAREPATH_SECRET_KEY", "x" * 40)
    get_settings.cache_clear()
    assert "Access token" not in web.get("/login").text
    assert web.post("/login", data={"token": token, "csrf_token": match.group(1)}).status_code == 404
