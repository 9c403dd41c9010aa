"""CSRF protection of the worklist forms: a signed double-submit token bound to the login session.

The browser holds a random nonce in an HttpOnly, SameSite=Strict cookie; every form carries
HMAC(key, nonce | hash of the session cookie). A cross-site page can neither read the nonce nor compute
the HMAC, and a token minted for one session is worthless in another. The key is derived from the
service's signing key, so it is never the JWT key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from shared.sessions import COOKIE as SESSION_COOKIE

NONCE_COOKIE = "carepath_csrf"
FIELD = "csrf_token"


def _key(signing_key: str) -> bytes:
    return hashlib.sha256(b"carepath-worklist-csrf\x00" + signing_key.encode()).digest()


def _session_hash(request: Request) -> str:
    return hashlib.sha256(request.cookies.get(SESSION_COOKIE, "").encode()).hexdigest()


def token_for(signing_key: str, nonce: str, session_hash: str) -> str:
    return hmac.new(_key(signing_key), f"{nonce}|{session_hash}".encode(), hashlib.sha256).hexdigest()


def nonce_of(request: Request) -> tuple[str, bool]:
    """The request's nonce, and whether it is new (then the response must set the cookie)."""
    nonce = request.cookies.get(NONCE_COOKIE, "")
    if len(nonce) >= 32:
        return nonce, False
    return secrets.token_urlsafe(32), True


def form_token(request: Request, signing_key: str, nonce: str) -> str:
    """The token to embed in this request's forms."""
    return token_for(signing_key, nonce, _session_hash(request))


def is_valid(request: Request, signing_key: str, submitted: str | None) -> bool:
    nonce = request.cookies.get(NONCE_COOKIE, "")
    if not submitted or len(nonce) < 32:
        return False
    expected = token_for(signing_key, nonce, _session_hash(request))
    return hmac.compare_digest(expected, submitted)


def set_nonce_cookie(response: Response, nonce: str, secure: bool) -> None:
    response.set_cookie(NONCE_COOKIE, nonce, httponly=True, samesite="strict", secure=secure, path="/")
