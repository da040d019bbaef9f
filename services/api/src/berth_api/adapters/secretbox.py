"""Secret values at rest: AES-256-GCM with a key from a key file created at first start (mode 0600).

A sealed value is ``b"\\x01" | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag``. The associated
data binds it to where it belongs (an application's variable, a deployment's snapshot), so a value copied
into another row or team does not open. The key id names the key that sealed it: older keys can be kept
for reading while everything is re-sealed with the current one (key rotation).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from berth_common.logging import get_logger

log = get_logger(__name__)

VERSION = b"\x01"
TEXT_PREFIX = "sealed:v1:"  # a sealed value inside JSON (deployment snapshots)
_HKDF_SALT = b"berth-api-v1"
_HKDF_INFO = b"application-secrets"


class SecretUnavailableError(RuntimeError):
    """A sealed value does not open: unknown key, tampered, or moved to another row. Never holds a value."""


def read_or_create_key(path: Path) -> bytes:
    """The key file's content; a missing file is created with 32 random bytes (hex), mode 0600.

    Creation writes a private temp file and links it into place, which fails if another process created
    the key meanwhile: then that key is used. An existing key is never overwritten.
    """
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(secrets.token_hex(32).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("secret key created", path=str(path))
        data = path.read_bytes().strip()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("secret key file is readable by others: chmod 600 it", path=str(path), mode=oct(mode))
    if len(data) < 32:
        raise ValueError(f"the secret key file {path} holds fewer than 32 bytes")
    return data


def _derive(material: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(material)


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"berth-api-key-id:" + key).digest()[:8]


class SecretBox:
    """Seal and open single values. ``materials[0]`` is the current key, the others only open."""

    def __init__(self, materials: list[bytes]) -> None:
        if not materials:
            raise ValueError("at least one key is needed")
        keys = [_derive(m) for m in materials]
        self._keys = {_key_id(k): k for k in reversed(keys)}
        self._current = _key_id(keys[0])

    def __repr__(self) -> str:
        return f"SecretBox(keys={len(self._keys)})"

    def seal(self, value: str, aad: str) -> bytes:
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self._current]).encrypt(nonce, value.encode(), aad.encode())
        return VERSION + self._current + nonce + sealed

    def open(self, blob: bytes, aad: str) -> str:
        blob = bytes(blob)
        if len(blob) < 1 + 8 + 12 + 16 or blob[:1] != VERSION:
            raise SecretUnavailableError("a sealed value has an unknown format")
        key = self._keys.get(blob[1:9])
        if key is None:
            raise SecretUnavailableError("a sealed value was written with a key this server does not have")
        try:
            return AESGCM(key).decrypt(blob[9:21], blob[21:], aad.encode()).decode()
        except InvalidTag:
            raise SecretUnavailableError("a sealed value does not open (tampered, or moved to another row)") from None

    def seal_text(self, value: str, aad: str) -> str:
        return TEXT_PREFIX + base64.b64encode(self.seal(value, aad)).decode()

    def open_text(self, text: str, aad: str) -> str:
        if not text.startswith(TEXT_PREFIX):
            raise SecretUnavailableError("not a sealed value")
        try:
            blob = base64.b64decode(text[len(TEXT_PREFIX) :], validate=True)
        except ValueError:
            raise SecretUnavailableError("a sealed value is not valid base64") from None
        return self.open(blob, aad)


def open_box(path: Path, previous: list[Path] | None = None) -> SecretBox:
    """The box of the key file at ``path`` (created if missing), plus older key files for reading."""
    return SecretBox([read_or_create_key(path), *(p.read_bytes().strip() for p in previous or [])])
