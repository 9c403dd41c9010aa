"""Who calls a CDS service: a JWT of a registered CDS client, checked as CDS Hooks 2.0 says (iss a registered
client, signature with the client's key from its JWKS URL or inline JWKS, `aud` the endpoint called, short
`exp`, `jti` used once), or a carepath bearer token (shared.auth). Anything else is 401."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from shared import auth
from shared.clock import utcnow
from shared.db.engine import get_engine
from shared.db.tables import CdsClient, CdsJwtUse, table_of
from shared.db.uow import UnitOfWork
from shared.settings import get_settings

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
MAX_LIFETIME = timedelta(minutes=5)
LEEWAY_SECONDS = 30
JWKS_TIMEOUT_SECONDS = 3
_bearer = HTTPBearer(auto_error=False)
_jwk_clients: dict[str, jwt.PyJWKClient] = {}
_jwk_lock = threading.Lock()


class ClientRefused(Exception):
    """The CDS client's JWT is not acceptable (the reason is for the logs, never the response)."""


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="invalid or missing CDS client token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _jwk_client(url: str) -> jwt.PyJWKClient:
    with _jwk_lock:
        client = _jwk_clients.get(url)
        if client is None:
            client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=JWKS_TIMEOUT_SECONDS)
            _jwk_clients[url] = client
        return client


def _key(client: CdsClient, token: str, header: dict[str, Any]) -> Any:
    kid = header.get("kid")
    if client.jwks_url:
        try:
            return _jwk_client(client.jwks_url).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as problem:
            raise ClientRefused(f"no signing key: {type(problem).__name__}") from None
    keys = jwt.PyJWKSet.from_dict(client.jwks or {"keys": []}).keys
    matching = [k for k in keys if k.key_id == kid] if kid else keys
    if len(matching) != 1:
        raise ClientRefused("no (single) inline key matches the kid")
    return matching[0].key


def _record_jti(issuer: str, jti: str, expires_at: datetime) -> None:
    """Insert (issuer, jti) in its own transaction; a second use is a replay. Expired rows are pruned."""
    table = table_of(CdsJwtUse)
    now = utcnow()
    with get_engine(get_settings().effective_database_url).begin() as connection:
        connection.execute(delete(table).where(table.c.expires_at < now - timedelta(seconds=LEEWAY_SECONDS)))
        try:
            with connection.begin_nested():
                connection.execute(insert(table).values(issuer=issuer, jti=jti, expires_at=expires_at))
        except IntegrityError:
            raise ClientRefused("jti replayed") from None


def verify_client_jwt(token: str, audiences: list[str]) -> auth.Principal:
    """The principal (the client's organisation, role client) of a valid CDS client JWT."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ClientRefused("malformed") from None
    issuer = unverified.get("iss")
    if header.get("alg") not in ALGORITHMS or not isinstance(issuer, str):
        raise ClientRefused("algorithm or issuer")
    with UnitOfWork(read_only=True) as uow:
        client = uow.session.execute(select(CdsClient).where(col(CdsClient.issuer) == issuer)).scalar_one_or_none()
        if client is None:
            raise ClientRefused("unknown issuer")
        uow.session.expunge(client)  # read after the unit of work ends
    key = _key(client, token, header)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=audiences,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as problem:
        raise ClientRefused(type(problem).__name__) from None
    issued, expires, jti = claims["iat"], claims["exp"], claims["jti"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (issued, expires)):
        raise ClientRefused("iat/exp not numbers")
    now = utcnow().timestamp()
    if expires - issued > MAX_LIFETIME.total_seconds() or expires - now > MAX_LIFETIME.total_seconds() + LEEWAY_SECONDS:
        raise ClientRefused("lifetime longer than 5 minutes")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        raise ClientRefused("jti")
    _record_jti(issuer, jti, datetime.fromtimestamp(expires, tz=UTC) + timedelta(seconds=LEEWAY_SECONDS))
    subject = f"cds:{client.id}"
    return auth.Principal(
        org=client.org,
        role="client",
        subject=subject,
        token_id=jti[:64],
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
    )


def _is_carepath_token(token: str) -> bool:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return header.get("alg") == "EdDSA" and claims.get("iss") == auth.ISSUER


def endpoint_urls(request: Request) -> list[str]:
    """The audiences accepted: the endpoint URL called, and for feedback its service's URL."""
    called = str(request.url.replace(query="", fragment="")).rstrip("/")
    urls = [called]
    if called.endswith("/feedback"):
        urls.append(called.removesuffix("/feedback"))
    return urls


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> auth.Principal:
    """Dependency: a CDS client (JWT) or a carepath principal; 401 otherwise."""
    token = credentials.credentials if credentials else None
    if not token or len(token) > 8000:
        raise _unauthorized()
    if _is_carepath_token(token):
        return auth.authenticate(token)
    try:
        return verify_client_jwt(token, endpoint_urls(request))
    except ClientRefused:
        raise _unauthorized() from None


Caller = Annotated[auth.Principal, Depends(caller)]
