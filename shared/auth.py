"""Bearer tokens: HS256 JWTs carrying the organisation and role. Every patient and reminder query is
scoped by the token's organisation; another organisation's id is simply not found (404)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.clock import utcnow
from shared.settings import Settings, get_settings

ROLES = ("client", "coordinator", "ops")
ISSUER = "carepath"
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Principal:
    org: str
    role: str
    subject: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"


def create_token(settings: Settings, org: str, role: str, subject: str | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not org or len(org) > 100:
        raise ValueError("org must be 1-100 characters")
    now = utcnow()
    claims = {
        "iss": ISSUER,
        "sub": subject or f"{role}-{uuid.uuid4().hex[:12]}",
        "org": org,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=settings.token_ttl_days)).timestamp()),
    }
    return jwt.encode(claims, settings.signing_key(), algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    claims = jwt.decode(
        token, settings.signing_key(), algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "org", "role"]}
    )
    if claims["role"] not in ROLES:
        raise jwt.InvalidTokenError("unknown role")
    return Principal(org=str(claims["org"]), role=str(claims["role"]), subject=str(claims.get("sub", "")))


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def principal_from_request(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, allow_cookie: bool = True
) -> Principal:
    """The caller: the bearer token, or (worklist pages only) the HttpOnly login cookie."""
    token = credentials.credentials if credentials else None
    if token is None and allow_cookie:
        token = request.cookies.get("carepath_token")
    if not token:
        raise _unauthorized("missing bearer token")
    try:
        return decode_token(get_settings(), token)
    except jwt.PyJWTError:
        raise _unauthorized("invalid or expired token") from None


def require(*roles: str) -> Callable[..., Principal]:
    """Dependency: an authenticated principal holding one of `roles` (any role if none given)."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        # The API takes the bearer header only: a browser's cookie never authorises an API call (CSRF).
        principal = principal_from_request(request, credentials, allow_cookie=False)
        if roles and principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role} may not do this")
        return principal

    return dependency


def require_feed() -> Callable[..., Principal]:
    """Dependency for calendar feeds: the bearer header, or `?token=` for calendar apps, which cannot send
    headers. Read-only GET routes only; the token is as secret as a password (see docs/security.md)."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        token = credentials.credentials if credentials else request.query_params.get("token")
        if not token:
            raise _unauthorized("missing bearer token")
        try:
            return decode_token(get_settings(), token)
        except jwt.PyJWTError:
            raise _unauthorized("invalid or expired token") from None

    return dependency
