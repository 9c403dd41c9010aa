"""Fixtures of the security tests: both HTTP apps on a real, migrated database, tokens of every kind
(valid, expired, revoked, signed by an unknown key, over-long, feed) and forged claim sets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app, create_notifications_app
from shared import token_keys
from shared.auth import FEED, ISSUER, create_token, revoke_token_or_id
from shared.clock import utcnow
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork
from shared.settings import Settings

ORG = "org-sec"


def forge(settings: Settings, overrides: dict[str, Any], *, key: Ed25519PrivateKey | None = None, **header: Any) -> str:
    """A token signed with this deployment's key (or `key`) whose claims are a valid set with `overrides`
    (a value of None deletes the claim)."""
    key_set = token_keys.keys(settings)
    now = int(utcnow().timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "tester",
        "org": ORG,
        "role": "ops",
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    signing = key or key_set.signing
    assert signing is not None
    kid = token_keys.key_id(signing.public_key())
    return jwt.encode(claims, signing, algorithm="EdDSA", headers={"kid": kid, **header})


def public_raw(settings: Settings) -> bytes:
    signing = token_keys.keys(settings).signing
    assert signing is not None
    return signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass
class BadTokens:
    """Each a token that must be refused by every API route; `name -> token`."""

    tokens: dict[str, str]


@pytest.fixture
def bad_tokens(settings: Settings) -> BadTokens:
    now = int(utcnow().timestamp())
    revoked = create_token(settings, ORG, "ops")
    revoke_token_or_id(settings, revoked, "test")
    stranger = Ed25519PrivateKey.generate()
    return BadTokens(
        {
            "expired": forge(settings, {"iat": now - 7200, "exp": now - 3600}),
            "revoked": revoked,
            "wrong key": forge(settings, {}, key=stranger),
            "wrong key, our kid": jwt.encode(
                jwt.decode(forge(settings, {}), options={"verify_signature": False}),
                stranger,
                algorithm="EdDSA",
                headers={"kid": token_keys.keys(settings).signing_kid},
            ),
            "over-long lifetime": forge(settings, {"exp": now + int(timedelta(hours=9).total_seconds())}),
            "year 9999": forge(settings, {"exp": 253402300799}),
            "feed token": create_token(settings, ORG, "coordinator", typ=FEED),
            # Algorithm confusion: HMAC keyed with our (public) verification key.
            "HS256 keyed with the public key": jwt.encode(
                jwt.decode(forge(settings, {}), options={"verify_signature": False}),
                public_raw(settings),
                algorithm="HS256",
                headers={"kid": token_keys.keys(settings).signing_kid},
            ),
            "alg none": jwt.encode(
                jwt.decode(forge(settings, {}), options={"verify_signature": False}),
                None,
                algorithm="none",
                headers={"kid": token_keys.keys(settings).signing_kid},
            ),
            "unknown kid": forge(settings, {}, kid="someone-elses-k"),
            "garbage": "not.a.token",
        }
    )


@pytest.fixture
def intake_app(settings: Settings) -> FastAPI:
    return create_intake_app()


@pytest.fixture
def notifications_app(settings: Settings) -> FastAPI:
    return create_notifications_app()


@pytest.fixture
def apps(intake_app: FastAPI, notifications_app: FastAPI) -> dict[str, FastAPI]:
    return {"intake": intake_app, "notifications": notifications_app}


@pytest.fixture
def seeded(settings: Settings) -> dict[str, str]:
    """A patient and a due reminder of ORG: path parameters that exist, so a route gets past 404."""
    now = utcnow()
    with UnitOfWork(settings) as uow:
        patient = Patient(org=ORG, external_id="MRN-SEC-1", created_at=now)
        uow.session.add(patient)
        uow.session.flush()
        reminder = Reminder(
            org=ORG,
            patient_id=patient.id,
            kind="pt_follow_up",
            due_at=now - timedelta(hours=1),
            status="due",
            text="PT follow-up due: review progress",
            citation="G1",
            fact_ids=[],
            delivered_at=now,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(reminder)
        uow.commit()
        return {"patient_id": patient.id, "reminder_id": reminder.id}


@pytest.fixture
def bearer(settings: Settings) -> Callable[..., dict[str, str]]:
    def headers(role: str = "ops", org: str = ORG) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_token(settings, org, role)}"}

    return headers


def client_for(app: FastAPI, base_url: str = "http://testserver") -> TestClient:
    return TestClient(app, base_url=base_url, raise_server_exceptions=False, follow_redirects=False)
