"""Sealed values on the bus: secret values travel as AES-256-GCM tokens, never in clear text.

Every service shares ``BERTH_SECRET_KEY``; the sealing key is derived from it with HKDF-SHA256 (info
``berth sealing v1``). A sealed value is text that fits in JSON::

    sealed:v1:<key id>:<base64url(nonce | ciphertext+tag)>

``key id`` (16 hex digits) names the derived key that sealed it, so values sealed before a key rotation
still open while the previous secret key is configured. The associated data (``aad``) binds a value to
its purpose (``berth/env/DATABASE_URL``): a token moved to another field does not open.

The process-wide keyring is set once at service start (``berth_common.runtime.serve`` calls
:func:`configure` from the settings). Without it, :func:`seal` and :func:`unseal` raise
:class:`NoSealingKeyError`: a secret is never sent in clear text for want of a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

PREFIX = "sealed:v1:"
HKDF_INFO = b"berth sealing v1"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_HEX = 16
_TOKEN = re.compile(r"^sealed:v1:([0-9a-f]{16}):([A-Za-z0-9_-]+={0,2})$")


class SealingError(Exception):
    """Base of the sealing errors; the message never holds a secret value."""


class NoSealingKeyError(SealingError, RuntimeError):
    """No sealing key is configured in this process (``berth_common.sealing.configure`` was not called)."""


class UnsealError(SealingError, ValueError):
    """A sealed value does not open: sealed with a key not configured here, tampered, or moved elsewhere."""


def derive_key(secret_key: str) -> bytes:
    """The 32-byte AES key derived from a secret key (HKDF-SHA256, no salt, info ``berth sealing v1``)."""
    if not secret_key:
        raise ValueError("the secret key is empty")
    # RFC 5869 with the standard library (cryptography's HKDF gives the same key; tests/common checks it):
    # extract with an all-zero salt, then one expand block (32 bytes is one SHA-256 output).
    prk = hmac.new(b"\x00" * 32, secret_key.encode(), hashlib.sha256).digest()
    return hmac.new(prk, HKDF_INFO + b"\x01", hashlib.sha256).digest()


def key_id_of(key: bytes) -> str:
    """A public name for a derived key (it reveals nothing about the key)."""
    return hashlib.sha256(b"berth sealing key id:" + key).hexdigest()[:KEY_ID_HEX]


def _parse(token: str) -> tuple[str, bytes] | None:
    match = _TOKEN.match(token)
    if match is None:
        return None
    try:
        blob = base64.urlsafe_b64decode(match.group(2) + "=" * (-len(match.group(2)) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        return None
    return match.group(1), blob


def is_sealed(value: str) -> bool:
    """Whether ``value`` is a well-formed sealed token (it says nothing about whether it opens)."""
    return value.startswith(PREFIX) and _parse(value) is not None


def token_key_id(token: str) -> str | None:
    """The key id a token names, or None when ``token`` is not a sealed token."""
    parsed = _parse(token)
    return parsed[0] if parsed else None


def sealed_length(plaintext_bytes: int) -> int:
    """The length of the token sealing a value of ``plaintext_bytes`` UTF-8 bytes."""
    raw = NONCE_BYTES + plaintext_bytes + TAG_BYTES
    return len(PREFIX) + KEY_ID_HEX + 1 + 4 * ((raw + 2) // 3)


@dataclass(frozen=True)
class Keyring:
    """The current sealing key and the previous ones (kept only to open values sealed before a rotation)."""

    current: str  # key id
    keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def from_secrets(cls, secret_key: str, previous_keys: Iterable[str] = ()) -> Keyring:
        current = derive_key(secret_key)
        keys = {key_id_of(k): k for k in (derive_key(p) for p in previous_keys)}
        keys[key_id_of(current)] = current
        return cls(current=key_id_of(current), keys=keys)

    def __repr__(self) -> str:
        return f"Keyring(current={self.current!r}, keys={len(self.keys)})"

    def seal(self, plaintext: str, aad: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # loaded on first use: 6 MB resident

        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext.encode(), aad.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self.current}:{body}"

    def unseal(self, token: str, aad: str) -> str:
        parsed = _parse(token)
        if parsed is None:
            raise UnsealError(f"not a sealed value (expected {PREFIX}<key id>:<data>)")
        kid, blob = parsed
        key = self.keys.get(kid)
        if key is None:
            raise UnsealError(
                f"sealed with key {kid}, which is not configured here (BERTH_SECRET_KEY changed without keeping "
                "the previous one)"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
        except InvalidTag:
            raise UnsealError("a sealed value does not open (tampered, or moved to another field)") from None
        return plain.decode()

    def reseal(self, token: str, aad: str) -> str:
        """``token`` if the current key sealed it, else the same plaintext sealed with the current key."""
        plain = self.unseal(token, aad)
        if token_key_id(token) == self.current:
            return token
        return self.seal(plain, aad)


_keyring: Keyring | None = None


def configure(secret_key: str, previous_keys: Iterable[str] = (), *, keep_open: bool = False) -> Keyring:
    """Set the process-wide keyring from the secret key (and previous ones, to open older values).

    ``keep_open``: the keys configured before in this process still open values (several services served
    in one process, each configuring its key at start, never lose what another one sealed).
    """
    global _keyring
    ring = Keyring.from_secrets(secret_key, [p for p in previous_keys if p])
    if keep_open and _keyring is not None:
        ring = Keyring(current=ring.current, keys={**_keyring.keys, **ring.keys})
    _keyring = ring
    return ring


def install(keyring: Keyring | None) -> Keyring | None:
    """Replace the process-wide keyring (None: none configured); returns the one it replaced."""
    global _keyring
    before, _keyring = _keyring, keyring
    return before


def keyring() -> Keyring:
    """The process-wide keyring; raises :class:`NoSealingKeyError` when none is configured."""
    if _keyring is None:
        raise NoSealingKeyError(
            "no sealing key is configured in this process: call berth_common.sealing.configure(secret_key) "
            "at start (the service runtime does it from BERTH_SECRET_KEY)"
        )
    return _keyring


def is_configured() -> bool:
    return _keyring is not None


def seal(plaintext: str, aad: str) -> str:
    """Seal ``plaintext`` for ``aad`` with the current key."""
    return keyring().seal(plaintext, aad)


def unseal(token: str, aad: str) -> str:
    """The plaintext of ``token``; raises :class:`UnsealError` if it does not open for ``aad``."""
    return keyring().unseal(token, aad)


def reseal(token: str, aad: str) -> str:
    """``token`` under the current key (unchanged if it already is); raises if it does not open."""
    return keyring().reseal(token, aad)
