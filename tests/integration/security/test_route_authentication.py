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
from fastapi.routing import APIRoute, iter_route_contexts

from shared import audit, sessions
from shared.auth import FEED, ROLES, RoleRequirement, create_token
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


# --- declared roles, 403 for the others, 404 for another organisation's ids --------------------------------

OTHER_ORG = "org-sec-other"
CDS = re.compile(r"^/cds-services")  # a registered CDS client's JWT or any carepath token (services/pathway/cds)


def declared_roles(app: FastAPI) -> dict[tuple[str, str], tuple[str, ...]]:
    """(method, path) -> the roles its `require(...)` dependency declares, read from the routes themselves."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}

    def walk(dependant: Any) -> list[tuple[str, ...]]:
        roles = [d.call.roles for d in dependant.dependencies if isinstance(d.call, RoleRequirement)]
        return roles + [r for d in dependant.dependencies for r in walk(d)]

    for context in iter_route_contexts(app.routes):  # included routers too, with their prefixes
        if not isinstance(context.original_route, APIRoute):
            continue
        declared = walk(context.dependant)
        for method in context.methods or ():
            if declared:
                assert len(set(declared)) == 1, (method, context.path, declared)
                found[(method, str(context.path))] = declared[0]
    assert found, "no route declares roles: the route walk is broken"
    return found


def test_every_api_route_declares_its_roles(apps: dict[str, FastAPI]) -> None:
    for name, app in apps.items():
        roles = declared_roles(app)
        for method, path, _ in operations(app):
            key = (method, path)
            if key in PUBLIC | SIGN_IN | FEED_ROUTES or WORKLIST.match(path) or CDS.match(path):
                assert key not in roles, (name, key, "a public, feed, worklist or CDS route declares API roles")
                continue
            assert key in roles, (name, key, "an API route without require(...)")
            assert set(roles[key]) <= set(ROLES)
        for method, path, operation in operations(app):  # … and the OpenAPI document publishes them
            assert operation.get("x-carepath-roles") == (
                list(roles[(method, path)]) if (method, path) in roles else None
            )


def test_wrong_roles_are_refused_with_403(apps: dict[str, FastAPI], settings: Settings) -> None:
    checked = 0
    for name, app in apps.items():
        roles = declared_roles(app)
        for method, path, operation in operations(app):
            allowed = roles.get((method, path))
            if allowed is None:
                continue
            for role in set(ROLES) - set(allowed):
                token = create_token(settings, ORG, role)
                response = client_for(app).request(
                    method, concrete(path, operation), headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 403, (name, method, path, role, response.status_code)
                checked += 1
    assert checked >= 10


# A valid body for the id routes that need one (so the request reaches the organisation check).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/patients/{patient_id}/updates"): {
        "type": "pain_assessment",
        "occurred_at": "2026-09-20T10:00:00+00:00",
        "data": {"pain_nrs": 5, "distribution": "axial"},
    },
    ("POST", "/v1/patients/{patient_id}/updates:batch"): {
        "updates": [
            {
                "type": "pain_assessment",
                "occurred_at": "2026-09-20T10:00:00+00:00",
                "data": {"pain_nrs": 5, "distribution": "axial"},
            }
        ]
    },
    ("POST", "/v1/reminders/{reminder_id}/snooze"): {"until": "2199-01-01T00:00:00+00:00"},
    ("POST", "/v1/reminders/{reminder_id}/dismiss"): {"reason": "not_applicable"},
    ("POST", "/v1/reminders/{reminder_id}/assign"): {"assignee": None},
}


def test_another_organisations_ids_are_404(
    apps: dict[str, FastAPI], settings: Settings, seeded: dict[str, str]
) -> None:
    ops = {"Authorization": f"Bearer {create_token(settings, ORG, 'ops')}"}
    notifications = client_for(apps["notifications"])
    endpoint = notifications.post("/v1/webhook-endpoints", json={"url": "https://127.0.0.1:9/hook"}, headers=ops)
    recipient = notifications.post("/v1/email-recipients", json={"address": "desk@clinic.example"}, headers=ops)
    assert endpoint.status_code == 201 and recipient.status_code == 201, (endpoint.text, recipient.text)
    ids = {
        **seeded,
        "endpoint_id": endpoint.json()["id"],
        "recipient_id": recipient.json()["id"],
    }
    checked = 0
    for name, app in apps.items():
        roles = declared_roles(app)
        for method, path, operation in operations(app):
            names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"]
            if (method, path) not in roles or not names:
                continue
            assert set(names) <= set(ids), (method, path, "a new id kind: seed one here")
            if "requestBody" in operation and operation["requestBody"].get("required"):
                assert (method, path) in BODIES, (method, path, "give a valid body in BODIES")
            url = path
            for parameter in names:
                url = url.replace("{" + parameter + "}", ids[parameter])
            role = "ops" if "ops" in roles[(method, path)] else roles[(method, path)][0]
            other = {"Authorization": f"Bearer {create_token(settings, OTHER_ORG, role)}"}
            body = BODIES.get((method, path))
            response = client_for(app).request(method, url, headers=other, json=body)
            assert response.status_code == 404, (name, method, path, response.status_code, response.text)
            assert ids[names[0]] not in response.text
            checked += 1
    assert checked >= 12
