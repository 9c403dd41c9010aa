"""Registering a CDS client: its JWT issuer, its keys (a JWKS URL, or a JWK / JWKS file inline), the
organisation whose patients its calls see, and the FHIR servers its calls may ask carepath to read
(`fhirServer`: an allow-list, SSRF)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import jwt
from sqlalchemy import select
from sqlmodel import col

from services.pathway.cds.auth import ALGORITHMS
from shared.auth import ORG_PATTERN
from shared.clock import utcnow
from shared.db.tables import CdsClient
from shared.db.uow import UnitOfWork


class InvalidClient(ValueError):
    pass


def read_jwks(path: Path) -> dict[str, Any]:
    """A JWK or a JWKS file as a JWKS of public keys (a private part is refused: never stored)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        raise InvalidClient(f"{path}: not a JSON JWK or JWKS ({type(problem).__name__})") from None
    keys = document.get("keys") if isinstance(document, dict) and "keys" in document else [document]
    if not isinstance(keys, list) or not keys:
        raise InvalidClient("no keys")
    for key in keys:
        if not isinstance(key, dict) or "d" in key:
            raise InvalidClient("a key is malformed or holds a private part (d): register public keys only")
        if key.get("alg") and key["alg"] not in ALGORITHMS:
            raise InvalidClient(f"algorithm {key['alg']} is not one of {', '.join(ALGORITHMS)}")
    try:
        jwt.PyJWKSet.from_dict({"keys": keys})
    except jwt.PyJWTError as problem:
        raise InvalidClient(f"not usable keys: {problem}") from None
    return {"keys": keys}


def normalise_fhir_server(url: str) -> str:
    """A FHIR base URL as it is compared: scheme and host lowercased, no trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))


def _fhir_server(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 1000:
        raise InvalidClient("a FHIR server must be an absolute http(s) base URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidClient("a FHIR server URL carries no credentials, query or fragment")
    try:
        if parts.port == 0:
            raise InvalidClient("a FHIR server URL's port is invalid")
    except ValueError:
        raise InvalidClient("a FHIR server URL's port is invalid") from None
    return normalise_fhir_server(url)


def register(
    org: str,
    issuer: str,
    jwks_url: str | None,
    jwks: dict[str, Any] | None,
    *,
    fhir_servers: list[str] | None = None,
) -> CdsClient:
    """Register (or re-key) the client of `issuer`; its FHIR server allow-list is replaced by `fhir_servers`."""
    allowed = sorted({_fhir_server(url) for url in fhir_servers or []})
    if not ORG_PATTERN.fullmatch(org):
        raise InvalidClient("org is malformed")
    if not issuer or len(issuer) > 500:
        raise InvalidClient("issuer is required (at most 500 characters)")
    if (jwks_url is None) == (jwks is None):
        raise InvalidClient("give either a JWKS URL or a JWK file")
    if jwks_url is not None:
        parsed = urlparse(jwks_url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc or len(jwks_url) > 1000:
            raise InvalidClient("the JWKS URL must be an absolute http(s) URL")
    with UnitOfWork() as uow:
        client = uow.session.execute(select(CdsClient).where(col(CdsClient.issuer) == issuer)).scalar_one_or_none()
        if client is None:
            client = CdsClient(org=org, issuer=issuer, created_at=utcnow())
        elif client.org != org:
            raise InvalidClient("this issuer is registered for another organisation")
        client.jwks_url, client.jwks, client.fhir_servers = jwks_url, jwks, allowed
        uow.session.add(client)
        uow.commit()
        return client


def allowed_fhir_servers(uow: UnitOfWork, org: str, subject: str) -> list[str]:
    """The FHIR servers the caller may name: a registered CDS client's allow-list (subject `cds:<id>`);
    nothing for any other caller (a carepath token names no client)."""
    if not subject.startswith("cds:"):
        return []
    statement = select(col(CdsClient.fhir_servers)).where(
        col(CdsClient.id) == subject.removeprefix("cds:"), col(CdsClient.org) == org
    )
    found = uow.session.execute(statement).scalar_one_or_none()
    return [str(url) for url in found or []]
