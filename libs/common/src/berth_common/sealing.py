"""Sealed values: the one format of every secret value Berth seals, on the bus and at rest.

A value is sealed with AES-256-GCM under a key derived for its purpose (:class:`Purpose`: HKDF-SHA256 with
the purpose's salt and info) from a secret: ``BERTH_SECRET_KEY`` for the bus and the scheduler's rows, a key
file (``berth_common.keyfile``) for the api's and the notifier's rows. One layout, as bytes (a ``bytea``
column) or as text (JSON, the bus)::

    bytes: 0x01 | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag
    text:  sealed:v1:<key id, 16 hex digits>:<base64url(nonce | ciphertext+tag), unpadded>

The tag byte and the ``sealed:v1:`` prefix name the format's version. The key id names the derived key
that sealed a value, so values sealed before a key rotation still open while the previous key is
configured. The associated data (``aad``) binds a value to its place (``berth/env/DATABASE_URL``): a value
moved to another field or row does not open. Formats stored before this one open too
(``berth_common.sealing_legacy``); key rotation re-seals them in this format.

The bus keyring is set once per process at service start (``berth_common.runtime.serve`` calls
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

PREFIX = "sealed:v1:"
VERSION = b"\x01"
HKDF_INFO = b"berth sealing v1"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_BYTES = 8
KEY_ID_HEX = 2 * KEY_ID_BYTES
MIN_BLOB = 1 + KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES
_TOKEN = re.compile(r"^sealed:v1:([0-9a-f]{16}):([A-Za-z0-9_-]+={0,2})$")


class SealingError(Exception):
    """Base of the sealing errors; the message never holds a secret value."""


class NoSealingKeyError(SealingError, RuntimeError):
    """No sealing key is configured in this process (``berth_common.sealing.configure`` was not called)."""


class UnsealError(SealingError, ValueError):
    """A sealed value does not open: sealed with a key not configured here, tampered, or moved elsewhere."""


class UnknownKeyError(UnsealError):
    """A sealed value names a key this keyring does not hold (a key file may have changed: re-read it)."""


@dataclass(frozen=True)
class Purpose:
    """What a key is for: its HKDF salt and info, the label of its key ids, and what a missing key means.

    ``fernet_label``: the purpose's values were once stored as Fernet tokens under
    ``sha256(label + secret)`` (the scheduler's rows); they still open (``berth_common.sealing_legacy``).
    """

    name: str
    salt: bytes | None
    info: bytes
    key_id_label: bytes
    missing_key: str  # why a key id is unknown, for the error message
    place: str = "field"  # where a sealed value lives: a value moved to another one does not open
    fernet_label: bytes | None = None


BUS = Purpose(
    "bus", None, HKDF_INFO, b"berth sealing key id:", "BERTH_SECRET_KEY changed without keeping the previous one"
)
API_SECRETS = Purpose(
    "api-secrets",
    b"berth-api-v1",
    b"application-secrets",
    b"berth-api-key-id:",
    "the api's key file was replaced without keeping the previous key",
    place="row",
)
NOTIFIER_CHANNELS = Purpose(
    "notifier-channels",
    b"berth-notifier-v1",
    b"channel-secrets",
    b"berth-key-id:",
    "the notifier's key changed without keeping the previous one",
    place="row",
)
SCHEDULER_SPECS = Purpose(
    "scheduler-specs",
    b"berth-scheduler-v1",
    b"deployment-specs",
    b"berth-scheduler-key-id:",
    "BERTH_SECRET_KEY changed",
    fernet_label=b"berth-scheduler-spec-v1:",
)


def _material(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def derive_key(secret_key: str | bytes, purpose: Purpose = BUS) -> bytes:
    """The 32-byte AES key derived from a secret for ``purpose`` (HKDF-SHA256, RFC 5869)."""
    material = _material(secret_key)
    if not material:
        raise ValueError("the secret key is empty")
    # RFC 5869 with the standard library (cryptography's HKDF gives the same key; tests/common checks it):
    # extract with the salt (all zeros without one), then one expand block (32 bytes is one SHA-256 output).
    prk = hmac.new(purpose.salt or b"\x00" * 32, material, hashlib.sha256).digest()
    return hmac.new(prk, purpose.info + b"\x01", hashlib.sha256).digest()


def key_id_of(key: bytes, purpose: Purpose = BUS) -> str:
    """A public name for a derived key (it reveals nothing about the key): 16 hex digits."""
    return hashlib.sha256(purpose.key_id_label + key).digest()[:KEY_ID_BYTES].hex()


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
    """Whether ``value`` is a well-formed sealed text (it says nothing about whether it opens)."""
    return value.startswith(PREFIX) and _parse(value) is not None


def token_key_id(token: str) -> str | None:
    """The key id a sealed text names, or None when ``token`` is not one in the current format."""
    parsed = _parse(token)
    return parsed[0] if parsed else None


def sealed_length(plaintext_bytes: int) -> int:
    """The length of the text sealing a value of ``plaintext_bytes`` UTF-8 bytes."""
    raw = NONCE_BYTES + plaintext_bytes + TAG_BYTES
    return len(PREFIX) + KEY_ID_HEX + 1 + 4 * ((raw + 2) // 3)


@dataclass(frozen=True)
class Keyring:
    """The current key of a purpose and the previous ones (kept only to open values sealed before a rotation).

    ``materials[0]`` (or ``secret_key``) seals; every key opens. ``fernet`` holds the legacy Fernet keys of
    a purpose that has them.
    """

    current: str  # key id
    keys: dict[str, bytes] = field(repr=False)
    purpose: Purpose = BUS
    fernet: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_materials(cls, materials: Sequence[str | bytes], purpose: Purpose = BUS) -> Keyring:
        if not materials:
            raise ValueError("at least one key is needed")
        derived = [derive_key(m, purpose) for m in materials]
        keys = {key_id_of(k, purpose): k for k in reversed(derived)}
        fernet: tuple[bytes, ...] = ()
        if purpose.fernet_label is not None:
            from berth_common.sealing_legacy import fernet_key

            fernet = tuple(fernet_key(purpose.fernet_label, _material(m)) for m in materials)
        return cls(current=key_id_of(derived[0], purpose), keys=keys, purpose=purpose, fernet=fernet)

    @classmethod
    def from_secrets(cls, secret_key: str, previous_keys: Iterable[str] = (), purpose: Purpose = BUS) -> Keyring:
        return cls.from_materials([secret_key, *previous_keys], purpose)

    def __repr__(self) -> str:
        return f"Keyring(current={self.current!r}, keys={len(self.keys)}, purpose={self.purpose.name!r})"

    def _seal(self, plaintext: str, aad: str) -> bytes:
        """nonce | ciphertext+tag under the current key."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # loaded on first use: 6 MB resident

        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.keys[self.current]).encrypt(nonce, plaintext.encode(), aad.encode())

    def _open(self, kid: str, sealed: bytes, aad: str) -> str:
        key = self.keys.get(kid)
        if key is None:
            raise UnknownKeyError(f"sealed with key {kid}, which is not configured here ({self.purpose.missing_key})")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad.encode())
        except InvalidTag:
            raise UnsealError(
                f"a sealed value does not open (tampered, or moved to another {self.purpose.place})"
            ) from None
        return plain.decode()

    def seal(self, plaintext: str, aad: str) -> str:
        """``plaintext`` sealed for ``aad`` with the current key, as text."""
        body = base64.urlsafe_b64encode(self._seal(plaintext, aad)).decode().rstrip("=")
        return f"{PREFIX}{self.current}:{body}"

    def seal_bytes(self, plaintext: str, aad: str) -> bytes:
        """``plaintext`` sealed for ``aad`` with the current key, as bytes."""
        return VERSION + bytes.fromhex(self.current) + self._seal(plaintext, aad)

    def unseal(self, token: str, aad: str) -> str:
        """The plaintext of a sealed text (this format or one stored before it)."""
        parsed = _parse(token)
        if parsed is None:
            return self._unseal_legacy(token, aad)
        return self._open(parsed[0], parsed[1], aad)

    def _unseal_legacy(self, token: str, aad: str) -> str:
        """A text in a format stored before the current one (``berth_common.sealing_legacy``)."""
        from berth_common import sealing_legacy as legacy

        blob = legacy.api_text_blob(token)
        if blob is not None:
            return self.unseal_bytes(blob, aad)
        if self.fernet and legacy.is_fernet_text(token):
            plain = legacy.open_fernet(self.fernet, token)
            if plain is None:
                raise UnsealError(f"a sealed value does not open with any configured key ({self.purpose.missing_key})")
            return plain
        raise UnsealError(f"not a sealed value (expected {PREFIX}<key id>:<data>)")

    def unseal_bytes(self, blob: bytes, aad: str) -> str:
        """The plaintext of sealed bytes."""
        blob = bytes(blob)
        if len(blob) < MIN_BLOB or blob[:1] != VERSION:
            raise UnsealError("a sealed value has an unknown format")
        return self._open(blob[1 : 1 + KEY_ID_BYTES].hex(), blob[1 + KEY_ID_BYTES :], aad)

    def is_current(self, sealed: str | bytes) -> bool:
        """Whether ``sealed`` is in the current format under the current key (key rotation skips those)."""
        if isinstance(sealed, str):
            return token_key_id(sealed) == self.current
        blob = bytes(sealed)
        return blob[:1] == VERSION and blob[1 : 1 + KEY_ID_BYTES].hex() == self.current

    def reseal(self, token: str, aad: str) -> str:
        """``token`` if the current key sealed it, else the same plaintext sealed with the current key."""
        plain = self.unseal(token, aad)
        if self.is_current(token):
            return token
        return self.seal(plain, aad)


class KeySource(Protocol):
    """Keys that can be re-read (``berth_common.keyfile.KeyFile``): what :class:`Box` needs of them."""

    @property
    def keyring(self) -> Keyring: ...

    def reload_quietly(self) -> bool:
        """Re-read the keys; whether that worked."""
        ...


class Box:
    """Seals and opens with a keyring that may be replaced (a key file re-read): the base of the adapters.

    ``source`` is a fixed :class:`Keyring`, or anything with a ``keyring`` attribute and a ``reload_quietly()``
    method (``berth_common.keyfile.KeyFile``): a value sealed with a key id it does not know makes it
    re-read its keys once before giving up.
    """

    def __init__(self, source: Keyring | KeySource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={len(self.keyring().keys)})"

    def keyring(self) -> Keyring:
        source = self._source
        return source if isinstance(source, Keyring) else source.keyring

    def _retry(self) -> bool:
        source = self._source
        return not isinstance(source, Keyring) and source.reload_quietly()

    def seal_bytes(self, plaintext: str, aad: str) -> bytes:
        return self.keyring().seal_bytes(plaintext, aad)

    def seal_text(self, plaintext: str, aad: str) -> str:
        return self.keyring().seal(plaintext, aad)

    def _opened(self, unseal: Callable[[Keyring], str]) -> str:
        try:
            return unseal(self.keyring())
        except UnknownKeyError:
            if not self._retry():
                raise
        return unseal(self.keyring())

    def open_bytes(self, blob: bytes, aad: str) -> str:
        return self._opened(lambda ring: ring.unseal_bytes(blob, aad))

    def open_text(self, text: str, aad: str) -> str:
        return self._opened(lambda ring: ring.unseal(text, aad))

    def is_current(self, sealed: str | bytes) -> bool:
        return self.keyring().is_current(sealed)


_keyring: Keyring | None = None


def configure(secret_key: str, previous_keys: Iterable[str] = (), *, keep_open: bool = False) -> Keyring:
    """Set the process-wide bus keyring from the secret key (and previous ones, to open older values).

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
