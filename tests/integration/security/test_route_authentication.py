"""Every operation of both OpenAPI documents, enumerated from the apps (not a hand list), refuses a request
without a token and with every kind of bad token: expired, revoked, signed by another key, a lifetime over
the maximum, a feed token, algorithm confusion, garbage. A new route is classified here or this test fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from shared import audit, sessions
from shared.auth import FEED, create_token
from shared.settings import Settings
from tests.integration.security.conftest import ORG, BadTokens, client_for

pytestmark = pytest.mark.integration

# Reachable without a token, by design (docs/security.md). /metrics and /openapi.json: development only
# (test_operations_endpoints_need_ops_outside_development).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/login"),
    # The OpenID Connect sign-in: the pre-login cookie and the provider's answer prove who signs in.
    ("GET", "/login/start"),
    ("GET", "/login/callback"),
    ("POST", "/logout"),
    ("GET", "/fhir/r4/metadata"),  # the CapabilityStatement: what the server accepts, no data (FHIR: public)
}
SIGN_IN = {("POST", "/login")}  # development only: takes the token in the form
FEED_ROUTES = {("GET", "/v1/reminders.ics")}  # feed tokens only
WORKLIST = re.compile(r"^/worklist")  # HTML pages: the session cookie; not signed in = redirect to /login
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                yield method.upper(), path, operation


def concrete(path: str, operation: dict[str, Any]) -> str:
    """The path with every parameter filled: the first enum value where the schema has one, else an id."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path":
            schema = parameter.get("schema", {})
            value = (schema.get("enum") or [str(uuid.uuid4())])[0]
            path = path.replace("{" + parameter["name"] + "}", str(value))
    assert "{" not in path, path
    return path


def all_operations(apps: dict[str, FastAPI]) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = [(name, *op) for name, app in apps.items() for op in operations(app)]
    assert len(found) > 30, "the OpenAPI documents lost their routes"
    return found


def test_every_route_is_classified(apps: dict[str, FastAPI]) -> None:
    for _, method, path, _ in all_operations(apps):
        key = (method, path)
        assert (
            key in PUBLIC | SIGN_IN | FEED_ROUTES
            or WORKLIST.match(path)
            or path.startswith(("/v1/", "/fhir/", "/cds-services"))
        )


def test_api_routes_refuse_missing_and_bad_tokens(
    apps: dict[str, FastAPI], bad_tokens: BadTokens, settings: Settings
) -> None:
    checked = 0
    cookie_session = sessions.start(settings, ORG, "ops", "tester", "token").secret
    legacy_cookie = create_token(settings, ORG, "ops")
    for name, method, path, operation in all_operations(apps):
        key = (method, path)
        if key in PUBLIC | SIGN_IN | FEED_ROUTES or WORKLIST.match(path):
            continue
        client = client_for(apps[name])
        url = concrete(path, operation)
        response = client.request(method, url)
        assert response.status_code == 401, (method, path, "no token", response.status_code)
        assert response.headers.get("www-authenticate") == "Bearer"
        for label, token in bad_tokens.tokens.items():
            response = client.request(method, url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (method, path, label, response.status_code)
        # The worklist's session cookie (or a token in the old cookie) never authorises an API call.
        client.cookies.set(sessions.COOKIE, cookie_session)
        client.cookies.set("carepath_token", legacy_cookie)
        assert client.request(method, url).status_code == 401, (method, path, "cookie")
        checked += 1
    assert checked >= 20


def test_worklist_pages_refuse_missing_and_bad_cookies(
    notifications_app: FastAPI, bad_tokens: BadTokens, seeded: dict[str, str], settings: Settings
) -> None:
    pages = [(m, p, op) for m, p, op in operations(notifications_app) if WORKLIST.match(p)]
    assert {p for _, p, _ in pages} >= {"/worklist", "/worklist/reminders/{reminder_id}/{action}"}
    ended = sessions.start(settings, ORG, "coordinator", "tester", "token").secret
    sessions.end(settings, ended)
    revoked = sessions.start(settings, ORG, "coordinator", "revoked-one", "token").secret
    assert sessions.revoke(settings, subject="revoked-one") == 1
    valid_access = create_token(settings, ORG, "coordinator")
    cookies: dict[str, dict[str, str]] = {
        "none": {},
        "random": {sessions.COOKIE: "x" * 43},
        "ended (logged out)": {sessions.COOKIE: ended},
        "revoked": {sessions.COOKIE: revoked},
        "an access token as the session": {sessions.COOKIE: valid_access},
        "a token in the old cookie": {"carepath_token": valid_access},
        **{f"token: {label}": {sessions.COOKIE: token} for label, token in bad_tokens.tokens.items()},
    }
    for method, path, operation in pages:
        url = concrete(path, operation)
        for label, jar in cookies.items():
            client = client_for(notifications_app)
            for name, value in jar.items():
                client.cookies.set(name, value)
            before = sum(1 for e in audit.export(settings) if e["action"] == "auth.refused")
            response = client.request(method, url)
            assert response.status_code == 303, (method, path, label, response.status_code)
            assert response.headers["location"] == "/login", (method, path, label)
            refused = sum(1 for e in audit.export(settings) if e["action"] == "auth.refused")
            # A session cookie that names no live session is a refused authentication, audited.
            assert refused == before + (1 if sessions.COOKIE in jar else 0), (method, path, label)


def test_worklist_sign_in_refuses_bad_tokens(notifications_app: FastAPI, bad_tokens: BadTokens) -> None:
    for label, token in bad_tokens.tokens.items():
        client = client_for(notifications_app)
        match = CSRF.search(client.get("/login").text)
        assert match
        response = client.post("/login", data={"token": token, "csrf_token": match.group(1)})
        assert response.status_code == 401, (label, response.status_code)
        assert sessions.COOKIE not in response.headers.get("set-cookie", "")


def test_feed_route_takes_feed_tokens_only(
    notifications_app: FastAPI, bad_tokens: BadTokens, settings: Settings
) -> None:
    client = client_for(notifications_app)
    assert client.get("/v1/reminders.ics").status_code == 401
    for label, token in bad_tokens.tokens.items():
        if label == "feed token":
            continue
        for request in ({"params": {"token": token}}, {"headers": {"Authorization": f"Bearer {token}"}}):
            assert client.get("/v1/reminders.ics", **request).status_code == 401, (label, request)
    for role in ("client", "coordinator", "ops"):  # the API's own, valid tokens are refused here
        access = create_token(settings, ORG, role)
        assert client.get("/v1/reminders.ics", params={"token": access}).status_code == 401, role
        assert client.get("/v1/reminders.ics", headers={"Authorization": f"Bearer {access}"}).status_code == 401
    feed = create_token(settings, ORG, "coordinator", typ=FEED)
    assert client.get("/v1/reminders.ics", params={"token": feed}).status_code == 200
    assert client.get("/v1/reminders.ics", headers={"Authorization": f"Bearer {feed}"}).status_code == 200


def test_operations_endpoints_need_ops_outside_development(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, apps: dict[str, FastAPI]
) -> None:
    from shared.settings import get_settings

    paths = ("/metrics", "/openapi.json", "/docs")
    for app in apps.values():
        client = client_for(app)
        for path in paths:  # development: open (the tests and developers use them)
            assert client.get(path).status_code == 200, path
    monkeypatch.setenv("CAREPATH_OPEN_DOCS_AND_METRICS", "false")
    get_settings.cache_clear()
    for app in apps.values():
        client = client_for(app)
        for path in paths:
            assert client.get(path).status_code == 401, path
            coordinator = create_token(get_settings(), ORG, "coordinator")
            assert client.get(path, headers={"Authorization": f"Bearer {coordinator}"}).status_code == 403, path
            ops = create_token(get_settings(), ORG, "ops")
            assert client.get(path, headers={"Authorization": f"Bearer {ops}"}).status_code == 200, path
        assert client.get("/healthz").status_code == 200
