"""Token keys: Ed25519 (JWS `EdDSA`), each named by a `kid` derived from its public key.

- The **signing key** (private) is needed only where tokens are minted (`carepath token create`):
  `CAREPATH_TOKEN_SIGNING_KEY`, a PEM text or the path of a PEM file.
- The **verification keys** (public) are what the HTTP services need: the signing key's own public half
  when this process has it, plus `CAREPATH_TOKEN_VERIFY_KEYS` (PEM text or a file, one or more public
  keys). A rollover publishes the new public key to every service first, then switches the signing key,
  and removes the old public key once the longest token lifetime has passed.
- Development without configuration: a key created once under `var/token-signing.pem` (mode 0600).
- Verification keys configured without a signing key: a verify-only process, whatever the environment.
- Compatibility (compose, one trust domain): outside development, with neither key configured, the pair
  is derived from `CAREPATH_SECRET_KEY` (HKDF). Every process then holds what signs; a deployment that
  wants verify-only services sets `CAREPATH_TOKEN_VERIFY_KEYS` on them, which turns the derivation off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.files import private_dir, write_private_file
from shared.settings import Settings

ALGORITHM = "EdDSA"
DEV_KEY_FILE = "token-signing.pem"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


class KeyConfigurationError(RuntimeError):
    """The token keys are missing or unreadable (the process refuses to issue or accept tokens)."""


@dataclass(frozen=True)
class KeySet:
    signing: Ed25519PrivateKey | None
    signing_kid: str | None
    verifying: dict[str, Ed25519PublicKey]


def key_id(public: Ed25519PublicKey) -> str:
    """A stable, short name for a public key: base64url(sha256(raw key))[:16]."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _text(value: str, what: str) -> str:
    """A setting that is PEM text itself or the path of a file holding it."""
    if "-----BEGIN" in value:
        return value
    path = Path(value).expanduser()
    try:
        return path.read_text()
    except OSError as error:
        raise KeyConfigurationError(f"{what}: cannot read the key file ({error.strerror})") from None


def _private(pem: str, what: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise KeyConfigurationError(f"{what} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{what} must be an Ed25519 key")
    return key


def _publics(text: str, what: str) -> list[Ed25519PublicKey]:
    keys: list[Ed25519PublicKey] = []
    for block in _PEM_BLOCK.finditer(text):
        try:
            if "PRIVATE" in block.group(1):
                raise KeyConfigurationError(f"{what} must hold public keys only")
            key = serialization.load_pem_public_key(block.group(0).encode())
        except ValueError:
            raise KeyConfigurationError(f"{what} holds a key that cannot be read") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyConfigurationError(f"{what} must hold Ed25519 keys")
        keys.append(key)
    if not keys:
        raise KeyConfigurationError(f"{what} holds no PEM public key")
    return keys


def _development_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.var_dir / DEV_KEY_FILE
    if not path.exists():
        private_dir(settings.var_dir)
        with contextlib.suppress(FileExistsError):  # another process created it first
            write_private_file(path, private_pem(Ed25519PrivateKey.generate()))
    return _private(path.read_text(), str(path))


def _derived_key(secret: str) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"carepath token ed25519 v1").derive(
        secret.encode()
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _signing_key(settings: Settings) -> Ed25519PrivateKey | None:
    if settings.token_signing_key:
        return _private(_text(settings.token_signing_key, "CAREPATH_TOKEN_SIGNING_KEY"), "CAREPATH_TOKEN_SIGNING_KEY")
    if settings.token_verify_keys:
        return None  # a verify-only process (in development too: the keys are configured)
    if settings.env == "development":
        return _development_key(settings)
    return _derived_key(settings.signing_key())  # refuses a missing or short CAREPATH_SECRET_KEY


_CACHE: dict[tuple[str, str, str, str, str], KeySet] = {}


def keys(settings: Settings) -> KeySet:
    """The process' key set, cached per configuration (a key file is read once, not per request)."""
    cache_key = (
        settings.env,
        str(settings.var_dir.resolve()),
        settings.token_signing_key,
        settings.token_verify_keys,
        settings.secret_key,
    )
    if (cached := _CACHE.get(cache_key)) is not None:
        return cached
    signing = _signing_key(settings)
    verifying: dict[str, Ed25519PublicKey] = {}
    signing_kid = None
    if signing is not None:
        signing_kid = key_id(signing.public_key())
        verifying[signing_kid] = signing.public_key()
    if settings.token_verify_keys:
        for public in _publics(_text(settings.token_verify_keys, "CAREPATH_TOKEN_VERIFY_KEYS"), "verify keys"):
            verifying[key_id(public)] = public
    if not verifying:
        raise KeyConfigurationError("no token verification key is configured")
    key_set = KeySet(signing=signing, signing_kid=signing_kid, verifying=verifying)
    _CACHE[cache_key] = key_set
    return key_set


def generate_key_file(path: Path) -> Ed25519PublicKey:
    """A new signing key written to `path` (0600, refusing to overwrite); returns its public key."""
    if path.exists():
        raise FileExistsError(str(path))
    private = Ed25519PrivateKey.generate()
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, private_pem(private))
    return private.public_key()


def clear_cache() -> None:
    _CACHE.clear()
