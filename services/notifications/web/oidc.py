"""Worklist sign-in through the organisation's OpenID Connect provider (authorization code flow + PKCE),
with Authlib's client (`authlib.integrations.httpx_client.OAuth2Client`) and joserfc for the ID token.

- Configuration per organisation (`carepath oidc set`): issuer, client id, client secret (encrypted at
  rest, shared/encryption.py), the claim holding roles/groups and the map from its values to carepath
  roles (coordinator, ops). Stored in `oidc_provider`.
- `begin`: the issuer's discovery document (cached 5 minutes; its `issuer` must be the configured one),
  a random `state`, `nonce` and PKCE verifier (S256), sealed together with the organisation and the time
  into the pre-login cookie (Fernet, 10 minutes); returns the authorization URL.
- `finish`: the callback's `state` must match the cookie's; the code is exchanged (with the verifier and
  the client secret); the ID token is verified — signature against the issuer's JWKS (refetched once
  for an unknown `kid`), algorithms from discovery (never `none`), `iss`, `aud` (our client id), `exp`,
  `iat`, `nonce` — and its role claim mapped. Anything else is `SignInRefused`, with nothing stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import authlib.deprecate  # noqa: F401  (installs its "always" filter first, so ours below can override it)
import httpx
from authlib.oidc.core import CodeIDToken
from cryptography.fernet import InvalidToken
from joserfc import jwt as jose_jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from sqlmodel import col

with warnings.catch_warnings():
    # Authlib 1.9 warns on every process start that it found httpx rather than its fork httpx2; the httpx client
    # is what it supports and what we pin. Without this every `carepath` command printed the warning to stderr.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

from services.notifications.channels import config as channel_config
from shared import encryption
from shared.auth import ORG_PATTERN, SUBJECT_PATTERN
from shared.clock import utcnow
from shared.db.tables import OidcProvider, WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.settings import Settings, get_settings

PRE_LOGIN_COOKIE = "carepath_signin"
PRE_LOGIN_SECONDS = 600
WORKLIST_ROLES = ("coordinator", "ops")
DISCOVERY_TTL = 300.0
TIMEOUT = httpx.Timeout(5.0, connect=3.0)
LEEWAY_SECONDS = 60
_SEALER_PURPOSE = b"worklist pre-login v1"


class SignInRefused(Exception):
    """The sign-in did not prove who the user is (or they have no worklist role); `reason` is for the log
    and the audit trail's status, never shown verbatim with provider data."""

    def __init__(self, reason: str, status_code: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class ProviderUnavailable(Exception):
    """The provider's discovery document, JWKS or token endpoint could not be used."""


@dataclass(frozen=True)
class Provider:
    org: str
    issuer: str
    client_id: str
    client_secret: str
    role_claim: str
    role_map: dict[str, str]
    scopes: str


@dataclass(frozen=True)
class Identity:
    org: str
    subject: str
    role: str


# --- configuration ----------------------------------------------------------------------------------------


def _check_issuer(settings: Settings, issuer: str) -> str:
    parts = urlsplit(issuer)
    schemes = ("https", "http") if settings.env == "development" else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password or parts.query:
        raise ValueError(f"the issuer must be an absolute {' or '.join(schemes)} URL without credentials or query")
    if len(issuer) > 500:
        raise ValueError("the issuer is at most 500 characters")
    return issuer


def parse_mapping(items: list[str]) -> dict[str, str]:
    """`VALUE=ROLE` items (the claim's value, e.g. a group name, and a worklist role)."""
    mapping: dict[str, str] = {}
    for item in items:
        value, separator, role = item.rpartition("=")
        if not separator or not value or role not in WORKLIST_ROLES:
            raise ValueError(f"--map takes CLAIM_VALUE=ROLE with ROLE one of {', '.join(WORKLIST_ROLES)}")
        mapping[value[:200]] = role
    if not mapping:
        raise ValueError("give at least one --map CLAIM_VALUE=ROLE")
    return mapping


def configure(
    settings: Settings,
    org: str,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    role_claim: str,
    role_map: dict[str, str],
    scopes: str = "openid",
) -> None:
    if not ORG_PATTERN.fullmatch(org):
        raise ValueError("org is malformed")
    issuer = _check_issuer(settings, issuer.strip())
    if not client_id or len(client_id) > 200 or not client_secret:
        raise ValueError("a client id (at most 200 characters) and a client secret are required")
    if not role_claim or len(role_claim) > 100:
        raise ValueError("the role claim is required (at most 100 characters)")
    if "openid" not in scopes.split():
        raise ValueError("the scopes must include openid")
    with UnitOfWork(settings) as uow:
        values: dict[str, Any] = {
            "issuer": issuer,
            "client_id": client_id,
            "client_secret_encrypted": encryption.encrypt(settings, client_secret),
            "role_claim": role_claim,
            "role_map": dict(role_map),
            "scopes": scopes[:300],
            "updated_at": utcnow(),
        }
        row = uow.session.get(OidcProvider, org)
        if row is None:
            uow.session.add(OidcProvider(org=org, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
            uow.session.add(row)
        uow.commit()


def provider_for(settings: Settings, org: str) -> Provider | None:
    if not ORG_PATTERN.fullmatch(org):
        return None
    with UnitOfWork(settings, read_only=True) as uow:
        row = uow.session.get(OidcProvider, org)
        if row is None:
            return None
        return Provider(
            org=row.org,
            issuer=row.issuer,
            client_id=row.client_id,
            client_secret=encryption.decrypt(settings, row.client_secret_encrypted),
            role_claim=row.role_claim,
            role_map={str(k): str(v) for k, v in (row.role_map or {}).items()},
            scopes=row.scopes,
        )


# --- discovery and keys -----------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, tuple[float, dict[str, Any]]] = {}


def _get_json(url: str) -> dict[str, Any]:
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            response = client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as problem:
        raise ProviderUnavailable(f"{type(problem).__name__} fetching the provider's metadata") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable("the provider's metadata is not a JSON object")
    return document


def discovery(issuer: str) -> dict[str, Any]:
    """The issuer's OpenID Provider metadata (OpenID Connect Discovery 1.0), cached for 5 minutes."""
    with _cache_lock:
        cached = _discovery.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    document = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if document.get("issuer") != issuer:
        raise ProviderUnavailable("the discovery document names another issuer")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(name), str) or not document[name].startswith(("https://", "http://")):
            raise ProviderUnavailable(f"the discovery document has no {name}")
    with _cache_lock:
        _discovery[issuer] = (time.monotonic(), document)
    return document


def _key_set(issuer: str, metadata: dict[str, Any], *, force: bool) -> KeySet:
    with _cache_lock:
        cached = _jwks.get(issuer)
    if force or cached is None or time.monotonic() - cached[0] >= DISCOVERY_TTL:
        cached = (time.monotonic(), _get_json(metadata["jwks_uri"]))
        with _cache_lock:
            _jwks[issuer] = cached
    try:
        return KeySet.import_key_set(cached[1])  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProviderUnavailable("the provider's JWKS cannot be read") from None


def clear_caches() -> None:
    with _cache_lock:
        _discovery.clear()
        _jwks.clear()


# --- the flow ---------------------------------------------------------------------------------------------


def _client(provider: Provider, redirect_uri: str) -> OAuth2Client:
    return OAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )


def begin(settings: Settings, provider: Provider, redirect_uri: str) -> tuple[str, str]:
    """(the provider's authorization URL, the sealed pre-login cookie value)."""
    metadata = discovery(provider.issuer)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    with _client(provider, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
    sealed = encryption.sealer(settings, _SEALER_PURPOSE).encrypt(
        json.dumps({"org": provider.org, "state": state, "nonce": nonce, "verifier": verifier}).encode()
    )
    return str(url), sealed.decode()


def pending_org(settings: Settings, sealed: str | None) -> str | None:
    """The organisation a pre-login cookie is for (None when missing, forged or older than 10 minutes)."""
    pending = _unseal(settings, sealed)
    return pending["org"] if pending else None


def _unseal(settings: Settings, sealed: str | None) -> dict[str, str] | None:
    if not sealed or len(sealed) > 2000:
        return None
    try:
        raw = encryption.sealer(settings, _SEALER_PURPOSE).decrypt(
            sealed.encode(), ttl=PRE_LOGIN_SECONDS
        )  # Fernet checks its own timestamp with time.time(): a wall-clock bound, as a cookie's should be
        pending = json.loads(raw)
    except (InvalidToken, ValueError):
        return None
    names = ("org", "state", "nonce", "verifier")
    if not isinstance(pending, dict) or not all(isinstance(pending.get(n), str) for n in names):
        return None
    return {n: pending[n] for n in names}


def _subject(sub: object) -> str:
    """The provider's `sub` as a carepath subject: itself when it fits the charset, else a stable hash."""
    if isinstance(sub, str) and SUBJECT_PATTERN.fullmatch(sub):
        return sub
    return "oidc-" + hashlib.sha256(str(sub).encode()).hexdigest()[:32]


def _role(provider: Provider, claims: dict[str, Any]) -> str | None:
    """The highest worklist role any of the role claim's values maps to (ops over coordinator)."""
    value = claims.get(provider.role_claim)
    values = (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )
    roles = {provider.role_map[v] for v in values if v in provider.role_map}
    for role in ("ops", "coordinator"):
        if role in roles:
            return role
    return None


def finish(
    settings: Settings, provider: Provider, sealed: str | None, params: dict[str, str], redirect_uri: str
) -> Identity:
    """Complete the sign-in from the callback's query parameters; SignInRefused or ProviderUnavailable."""
    pending = _unseal(settings, sealed)
    if pending is None or pending["org"] != provider.org:
        raise SignInRefused("no sign-in in progress in this browser (or it took over 10 minutes)", 400)
    if "error" in params:
        raise SignInRefused("the provider refused the sign-in", 401)
    state, code = params.get("state", ""), params.get("code", "")
    if not state or not hmac.compare_digest(state.encode(), pending["state"].encode()):
        raise SignInRefused("state does not match", 400)
    if not code or len(code) > 2000:
        raise SignInRefused("no authorization code", 400)
    metadata = discovery(provider.issuer)
    with _client(provider, redirect_uri) as client:
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                code=code,
                code_verifier=pending["verifier"],
                grant_type="authorization_code",
            )
        except httpx.HTTPError:
            raise ProviderUnavailable("the token endpoint did not answer") from None
        except Exception as problem:  # Authlib's OAuthError: invalid_grant (a replayed or stolen code), …
            raise SignInRefused(f"the token endpoint refused the code ({type(problem).__name__})", 401) from None
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise SignInRefused("the token response has no ID token", 401)
    claims = _verified_claims(provider, metadata, id_token, pending["nonce"], token.get("access_token"))
    role = _role(provider, claims)
    if role is None:
        raise SignInRefused("no worklist role in the role claim", 403)
    return Identity(org=provider.org, subject=_subject(claims.get("sub")), role=role)


def _verified_claims(
    provider: Provider, metadata: dict[str, Any], id_token: str, nonce: str, access_token: object
) -> dict[str, Any]:
    algorithms = [a for a in metadata.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"]
    registry = JWSRegistry(algorithms=algorithms)
    try:
        try:
            decoded = jose_jwt.decode(id_token, _key_set(provider.issuer, metadata, force=False), registry=registry)
        except InvalidKeyIdError:  # the provider rotated its keys: fetch the JWKS once more
            decoded = jose_jwt.decode(id_token, _key_set(provider.issuer, metadata, force=True), registry=registry)
    except (JoseError, ValueError):
        raise SignInRefused("the ID token's signature does not verify", 401) from None
    params: dict[str, Any] = {"nonce": nonce, "client_id": provider.client_id}
    if isinstance(access_token, str):
        params["access_token"] = access_token
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": provider.issuer},
        "aud": {"essential": True, "value": provider.client_id},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
        "nonce": {"essential": True},
    }
    claims = CodeIDToken(decoded.claims, decoded.header, options, params)
    try:
        claims.validate(now=int(utcnow().timestamp()), leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError) as problem:
        raise SignInRefused(f"the ID token was refused ({type(problem).__name__})", 401) from None
    return dict(claims)


# --- `carepath oidc` --------------------------------------------------------------------------------------


def cmd_set(args: Any) -> int:
    settings = get_settings()
    secret = args.client_secret
    if args.client_secret_file:
        secret = Path(args.client_secret_file).read_text(encoding="utf-8").strip()
    try:
        configure(
            settings,
            args.org,
            issuer=args.issuer,
            client_id=args.client_id,
            client_secret=secret or "",
            role_claim=args.role_claim,
            role_map=parse_mapping(args.map or []),
            scopes=args.scopes,
        )
    except ValueError as problem:
        print(f"carepath oidc set: {problem}", file=sys.stderr)
        return 2
    print(f"sign-in for {args.org} through {args.issuer} configured")
    return 0


def cmd_show(args: Any) -> int:
    provider = provider_for(get_settings(), args.org)
    if provider is None:
        print(f"carepath oidc show: no provider for {args.org}", file=sys.stderr)
        return 1
    shown = {
        "org": provider.org,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": "(set, encrypted)",
        "role_claim": provider.role_claim,
        "role_map": provider.role_map,
        "scopes": provider.scopes,
    }
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def cmd_reencrypt(args: Any) -> int:
    """After adding a new key in front of CAREPATH_ENCRYPTION_KEYS: every client and webhook secret under it."""
    settings = get_settings()
    with UnitOfWork(settings) as uow:
        rows = list(uow.session.execute(select(OidcProvider).order_by(col(OidcProvider.org))).scalars())
        for row in rows:
            row.client_secret_encrypted = encryption.reencrypt(settings, row.client_secret_encrypted)
            uow.session.add(row)
        endpoints = list(uow.session.execute(select(WebhookEndpoint)).scalars())
        for endpoint in endpoints:  # webhook secrets too (channels/config.py seals them with the same keys)
            endpoint.secret = channel_config.reseal(endpoint.secret, settings)
            if endpoint.previous_secret:
                endpoint.previous_secret = channel_config.reseal(endpoint.previous_secret, settings)
            uow.session.add(endpoint)
        uow.commit()
    print(f"{len(rows)} client secret(s) and {len(endpoints)} webhook secret(s) re-encrypted under the newest key")
    return 0


def add_commands(sub: Any) -> None:
    oidc = sub.add_parser("oidc", help="worklist sign-in through an organisation's OpenID Connect provider")
    commands = oidc.add_subparsers(dest="oidc_command", required=True)
    set_parser = commands.add_parser("set", help="configure (or replace) an organisation's provider")
    set_parser.add_argument("--org", required=True)
    set_parser.add_argument("--issuer", required=True, help="the provider's issuer URL (discovery is read from it)")
    set_parser.add_argument("--client-id", required=True)
    secret = set_parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--client-secret")
    secret.add_argument("--client-secret-file", help="a file holding the client secret (kept out of `ps`)")
    set_parser.add_argument("--role-claim", required=True, help="the ID token claim with groups/roles (e.g. groups)")
    set_parser.add_argument(
        "--map", action="append", metavar="VALUE=ROLE", help="a claim value and the role it grants (repeatable)"
    )
    set_parser.add_argument("--scopes", default="openid", help="requested scopes (default: openid)")
    set_parser.set_defaults(func=cmd_set)
    show = commands.add_parser("show", help="an organisation's provider (the secret is not shown)")
    show.add_argument("--org", required=True)
    show.set_defaults(func=cmd_show)
    commands.add_parser(
        "reencrypt", help="re-encrypt every client and webhook secret under the newest key"
    ).set_defaults(func=cmd_reencrypt)
