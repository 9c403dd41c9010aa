"""Bearer tokens: Ed25519-signed JWTs (`EdDSA`, `kid` in the header) carrying the organisation and role.

Every patient and reminder query is scoped by the token's organisation; another organisation's id is
simply not found (404).

Two kinds of token, told apart by the `typ` claim and never interchangeable:

- `access`: the API's bearer tokens (and, in development, what the worklist's paste-a-token form takes). Lifetime at most
  `CAREPATH_TOKEN_MAX_HOURS` (coordinator, ops; 8 h) or `CAREPATH_CLIENT_TOKEN_MAX_HOURS` (client
  integrations; 720 h).
- `feed`: the calendar feed's `?token=` only (read-only, one organisation's reminder kinds and due times);
  at most `CAREPATH_FEED_TOKEN_MAX_DAYS` (90).

A token whose `exp` lies further from its `iat` than its kind allows is refused even when its signature is
good (no year-9999 tokens), and so is one whose claims have the wrong types or charset. Every token has a `jti`; `carepath token revoke` records it in `revoked_token`, which every request checks with one primary-key lookup.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, Select, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from shared import token_keys
from shared.clock import utcnow
from shared.db.engine import READ_ONLY_OPTION, get_engine
from shared.db.tables import RevokedToken, table_of
from shared.settings import Settings, get_settings

ROLES = ("client", "coordinator", "ops")
ISSUER = "carepath"
TokenType = Literal["access", "feed"]
ACCESS: Final = "access"
FEED: Final = "feed"
ORG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SUBJECT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}")
JTI_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
LEEWAY_SECONDS = 30  # clock skew between the minting machine and the services
_bearer = HTTPBearer(auto_error=False)


class TokenRefused(jwt.InvalidTokenError):
    """The token is well signed but its claims are not acceptable (types, lifetime, kind, revoked)."""


@dataclass(frozen=True)
class Principal:
    org: str
    role: str
    subject: str
    token_id: str = ""
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"


def max_lifetime(settings: Settings, typ: str, role: str) -> timedelta:
    """The longest `exp - iat` a token of this kind and role may have."""
    if typ == FEED:
        return timedelta(days=settings.feed_token_max_days)
    if role == "client":
        return timedelta(hours=settings.client_token_max_hours)
    return timedelta(hours=settings.token_max_hours)


def longest_lifetime(settings: Settings) -> timedelta:
    return max(max_lifetime(settings, typ, role) for typ in (ACCESS, FEED) for role in ROLES)


def create_token(
    settings: Settings,
    org: str,
    role: str,
    subject: str | None = None,
    *,
    typ: TokenType = ACCESS,
    lifetime: timedelta | None = None,
) -> str:
    """A signed token; `lifetime` defaults to (and may not exceed) the kind's maximum."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(org, str) or not ORG_PATTERN.fullmatch(org):
        raise ValueError("org must be 1-100 characters: letters, digits, '.', '_' or '-', starting alphanumeric")
    subject = subject or f"{typ if typ == FEED else role}-{secrets.token_hex(6)}"
    if not SUBJECT_PATTERN.fullmatch(subject):
        raise ValueError("subject must be 1-200 characters: letters, digits and . _ : @ + -")
    longest = max_lifetime(settings, typ, role)
    lifetime = lifetime or longest
    if not timedelta(0) < lifetime <= longest:
        raise ValueError(f"lifetime must be positive and at most {longest}")
    key_set = token_keys.keys(settings)
    if key_set.signing is None:
        raise token_keys.KeyConfigurationError("this process has no token signing key (CAREPATH_TOKEN_SIGNING_KEY)")
    issued = int(utcnow().timestamp())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "org": org,
        "role": role,
        "typ": typ,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": secrets.token_urlsafe(18),
    }
    return jwt.encode(claims, key_set.signing, algorithm=token_keys.ALGORITHM, headers={"kid": key_set.signing_kid})


def _integer(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenRefused(f"{name} must be an integer")
    return value


def _matching(claims: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise TokenRefused(f"{name} is malformed")
    return value


# Tokens whose signature (and issuer, required claims) this process has already verified, with the key set
# that verified them: an Ed25519 verification and two JWT parses per request were a tenth of a POST's CPU.
# The time checks, the kind, the claims' shapes and the revocation lookup still run on every request.
_VERIFIED_MAX = 4096
_verified: OrderedDict[str, tuple[token_keys.KeySet, dict[str, Any]]] = OrderedDict()
_verified_lock = threading.Lock()


def _verified_claims(key_set: token_keys.KeySet, token: str) -> dict[str, Any]:
    with _verified_lock:
        cached = _verified.get(token)
        if cached is not None and cached[0] is key_set:
            _verified.move_to_end(token)
            return cached[1]
    header = jwt.get_unverified_header(token)
    kid = header.get("kid")
    key = key_set.verifying.get(kid) if isinstance(kid, str) else None
    if key is None or header.get("alg") != token_keys.ALGORITHM:
        raise TokenRefused("unknown signing key")
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[token_keys.ALGORITHM],
        issuer=ISSUER,
        leeway=LEEWAY_SECONDS,
        options={
            "require": ["iss", "sub", "org", "role", "typ", "iat", "exp", "jti"],
            # times are checked below against shared.clock, not PyJWT's own time.time(): one clock
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
            "verify_aud": False,
        },
    )
    with _verified_lock:
        _verified[token] = (key_set, claims)
        if len(_verified) > _VERIFIED_MAX:
            _verified.popitem(last=False)
    return claims


def verify_signature(settings: Settings, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
    """The claims of a token signed by one of this process' verification keys (any kind, not checked
    against the revocation table). `verify_exp=False` for revoking an already expired token."""
    if not isinstance(token, str) or len(token) > 4000:
        raise TokenRefused("token is malformed")
    claims = dict(_verified_claims(token_keys.keys(settings), token))
    now = utcnow().timestamp()
    if verify_exp and _integer(claims, "exp") + LEEWAY_SECONDS <= now:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if "nbf" in claims and _integer(claims, "nbf") > now + LEEWAY_SECONDS:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    return claims


def decode_token(settings: Settings, token: str, *, typ: TokenType = ACCESS, check_revoked: bool = True) -> Principal:
    """The principal of a valid, unrevoked token of kind `typ`; jwt.InvalidTokenError otherwise."""
    claims = verify_signature(settings, token)
    if claims.get("typ") != typ:
        raise TokenRefused("wrong kind of token")
    org = _matching(claims, "org", ORG_PATTERN)
    subject = _matching(claims, "sub", SUBJECT_PATTERN)
    token_id = _matching(claims, "jti", JTI_PATTERN)
    role = claims.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise TokenRefused("unknown role")
    issued, expires = _integer(claims, "iat"), _integer(claims, "exp")
    if issued > utcnow().timestamp() + LEEWAY_SECONDS:
        raise TokenRefused("issued in the future")
    if expires - issued > max_lifetime(settings, typ, role).total_seconds():
        raise TokenRefused("lifetime longer than allowed")
    if check_revoked and is_revoked(settings, token_id):
        raise TokenRefused("revoked")
    return Principal(
        org=org,
        role=role,
        subject=subject,
        token_id=token_id,
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
    )


def is_revoked(settings: Settings, token_id: str) -> bool:
    """One primary-key lookup in `revoked_token` (PostgreSQL: in autocommit, so no BEGIN and ROLLBACK
    round trips around it)."""
    with _lookup_engine(get_engine(settings.effective_database_url)).connect() as connection:
        return connection.execute(_revocation_lookup(), {"jti": token_id}).first() is not None


@lru_cache(maxsize=1)
def _revocation_lookup() -> Select[tuple[str]]:
    """Built once (building it per request showed in the profile); the token id is its bound `jti`."""
    table = table_of(RevokedToken)
    return select(table.c.jti).where(table.c.jti == bindparam("jti"))


def _lookup_engine(engine: Engine) -> Engine:
    """The engine's read-only (SQLite) or autocommit (PostgreSQL) variant, made once: building it per
    request showed in the profile."""
    variant: Engine | None = getattr(engine, "_carepath_lookup", None)
    if variant is None:
        options = {READ_ONLY_OPTION: True} if engine.dialect.name == "sqlite" else {"isolation_level": "AUTOCOMMIT"}
        variant = engine.execution_options(**options)
        engine._carepath_lookup = variant  # type: ignore[attr-defined]  # lives and dies with its engine
    return variant


def revoke(settings: Settings, token_id: str, expires_at: datetime | None, reason: str) -> bool:
    """Record `token_id` as revoked (True if it was not already); rows of long-expired tokens are pruned."""
    if not JTI_PATTERN.fullmatch(token_id):
        raise ValueError("not a token id")
    now = utcnow()
    table = table_of(RevokedToken)
    row = {"jti": token_id, "revoked_at": now, "expires_at": expires_at or now + longest_lifetime(settings)}
    with get_engine(settings.effective_database_url).begin() as connection:
        connection.execute(delete(table).where(table.c.expires_at < now - timedelta(days=1)))
        try:
            with connection.begin_nested():
                connection.execute(insert(table).values(**row, reason=reason[:40]))
        except IntegrityError:
            return False
    return True


def revoke_token_or_id(settings: Settings, value: str, reason: str, *, allow_bare_id: bool = True) -> str:
    """Revoke a whole token (its signature is checked, expired or not) or, if allowed, a bare `jti`;
    returns the jti."""
    value = value.strip()
    if value.count(".") == 2 or not allow_bare_id:
        claims = verify_signature(settings, value, verify_exp=False)
        token_id = _matching(claims, "jti", JTI_PATTERN)
        expires = claims.get("exp")
        expires_at = (
            datetime.fromtimestamp(expires, tz=UTC)
            if isinstance(expires, int) and not isinstance(expires, bool) and 0 < expires < 7258118400  # < 2200
            else None
        )
        revoke(settings, token_id, expires_at, reason)
        return token_id
    revoke(settings, value, None, reason)
    return value


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(token: str | None, *, typ: TokenType = ACCESS) -> Principal:
    """The principal of `token`, or 401 (missing, malformed, expired, forged, revoked, wrong kind)."""
    if not token:
        raise _unauthorized("missing bearer token")
    try:
        return decode_token(get_settings(), token, typ=typ)
    except jwt.PyJWTError:
        raise _unauthorized("invalid, expired or revoked token") from None


def principal_from_request(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller of an API route: the bearer header only. No cookie ever authorises an API call (CSRF): the
    worklist's browser session is a server-side session (shared/sessions.py) that only its pages read."""
    return authenticate(credentials.credentials if credentials else None)


class RoleRequirement:
    """Dependency: an authenticated principal holding one of `roles` (every role if none given). The
    declared roles stay readable on the route (`roles`), so a test can enumerate what each route allows."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        unknown = [role for role in roles if role not in ROLES]
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        self.roles = roles or ROLES

    def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        principal = _audited(request, lambda: principal_from_request(request, credentials))
        if principal.role not in self.roles:
            refused = HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role} may not do this")
            _audit_refusal(request, principal, refused)
            raise refused
        return _within_limits(request, principal)


def require(*roles: str) -> RoleRequirement:
    """Dependency: an authenticated principal holding one of `roles` (any role if none given)."""
    return RoleRequirement(roles)


def require_feed() -> Callable[..., Principal]:
    """Dependency for the calendar feed: a feed token (`typ` feed), as `?token=` (calendar apps cannot send
    headers) or as the bearer header. API tokens are refused here, and feed tokens everywhere else."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        token = credentials.credentials if credentials else request.query_params.get("token")
        return _within_limits(request, _audited(request, lambda: authenticate(token, typ=FEED)))

    return dependency


def _audit_refusal(request: Request, principal: Principal | None, refused: HTTPException) -> None:
    """A refused authentication (401) or authorisation (403) goes to the audit trail."""
    from shared import audit

    audit.Audit(request).read(
        principal,
        "auth.refused",
        outcome=audit.DENIED,
        status_code=refused.status_code,
        patient_id=audit.safe_id(request.path_params.get("patient_id")),
    )


def audited_principal(request: Request, authenticate_request: Callable[[], Principal]) -> Principal:
    """For routes with an authentication of their own (CDS Hooks): its refusals audited, and the same
    per-token and per-organisation rates as every other route."""
    return _within_limits(request, _audited(request, authenticate_request))


def _audited(request: Request, authenticate_request: Callable[[], Principal]) -> Principal:
    try:
        return authenticate_request()
    except HTTPException as refused:
        _audit_refusal(request, None, refused)
        raise


def _within_limits(request: Request, principal: Principal) -> Principal:
    """The per-token and per-organisation request rates (shared.abuse): 429 with Retry-After when over."""
    from shared import abuse

    try:
        abuse.check_principal(get_settings(), principal.org, principal.token_id or principal.subject)
    except HTTPException as refused:
        _audit_refusal(request, principal, refused)
        raise
    return principal
