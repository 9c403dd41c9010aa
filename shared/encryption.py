"""Secrets at rest (OIDC client secrets): Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`).

`CAREPATH_ENCRYPTION_KEYS` holds one or more Fernet keys, comma-separated, newest first: the first
encrypts, every one decrypts (MultiFernet), so a rotation adds a new key in front, re-encrypts
(`carepath oidc reencrypt`) and later drops the old key. Without the setting the key is derived from the
service secret (`CAREPATH_SECRET_KEY`, HKDF): a database backup alone then does not reveal the secrets.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import Settings


class EncryptionKeyError(RuntimeError):
    """A key in CAREPATH_ENCRYPTION_KEYS is malformed, or no key decrypts a stored secret."""


def _derived(secret: str, purpose: bytes) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"carepath " + purpose).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


def _box(settings: Settings) -> MultiFernet:
    configured = [part.strip() for part in settings.encryption_keys.split(",") if part.strip()]
    try:
        keys = [Fernet(key) for key in configured] or [Fernet(_derived(settings.signing_key(), b"secrets v1"))]
    except ValueError:
        raise EncryptionKeyError("CAREPATH_ENCRYPTION_KEYS must hold Fernet keys (Fernet.generate_key())") from None
    return MultiFernet(keys)


def encrypt(settings: Settings, plain: str) -> str:
    return _box(settings).encrypt(plain.encode()).decode()


def decrypt(settings: Settings, stored: str) -> str:
    try:
        return _box(settings).decrypt(stored.encode()).decode()
    except InvalidToken:
        raise EncryptionKeyError("no configured encryption key decrypts this secret") from None


def reencrypt(settings: Settings, stored: str) -> str:
    """The secret encrypted under the newest key (after a rotation)."""
    try:
        return _box(settings).rotate(stored.encode()).decode()
    except InvalidToken:
        raise EncryptionKeyError("no configured encryption key decrypts this secret") from None


def sealer(settings: Settings, purpose: bytes) -> Fernet:
    """A Fernet keyed for one short-lived purpose (the pre-login cookie), derived from the service secret."""
    return Fernet(_derived(settings.signing_key(), purpose))
