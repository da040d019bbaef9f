"""Secret values at rest: AES-256-GCM with a key from a key file created at first start (mode 0600).

A sealed value is ``b"\\x01" | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag``. The associated
data binds it to where it belongs (an application's variable, a deployment's snapshot), so a value copied
into another row or team does not open. The key id names the key that sealed it: older keys can be kept
for reading while everything is re-sealed with the current one (key rotation: ``KeyRing``, and
``berth_api.usecases.rotation``).
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
        self._load(materials)

    def _load(self, materials: list[bytes]) -> None:
        if not materials:
            raise ValueError("at least one key is needed")
        keys = [_derive(m) for m in materials]
        self._keys = {_key_id(k): k for k in reversed(keys)}
        self._current = _key_id(keys[0])

    def sealed_with_text(self, text: str) -> bool:
        """``sealed_with_current`` for a sealed text (False for anything that is not one)."""
        if not text.startswith(TEXT_PREFIX):
            return False
        try:
            return self.sealed_with_current(base64.b64decode(text[len(TEXT_PREFIX) :], validate=True))
        except ValueError:
            return False

    def __repr__(self) -> str:
        return f"SecretBox(keys={len(self._keys)})"

    def seal(self, value: str, aad: str) -> bytes:
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self._current]).encrypt(nonce, value.encode(), aad.encode())
        return VERSION + self._current + nonce + sealed

    def _key(self, key_id: bytes) -> bytes | None:
        return self._keys.get(key_id)

    def sealed_with_current(self, blob: bytes) -> bool:
        """Whether a sealed value was written with the current key (key rotation skips those)."""
        return bytes(blob[1:9]) == self._current

    def open(self, blob: bytes, aad: str) -> str:
        blob = bytes(blob)
        if len(blob) < 1 + 8 + 12 + 16 or blob[:1] != VERSION:
            raise SecretUnavailableError("a sealed value has an unknown format")
        key = self._key(blob[1:9])
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


def backup_paths(path: Path) -> list[Path]:
    """Dated backups of the key file that key rotation leaves (``<name>.<UTC time>.bak``), newest first."""
    return sorted(path.parent.glob(f"{path.name}.*.bak"), reverse=True)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyRing(SecretBox):
    """A box whose keys are files: the key file (seals and opens) and its dated backups (open only).

    ``refresh()`` re-reads them when the key file was replaced (``berth secrets rotate-key`` renames a new
    one into place); a value sealed with a key this process does not know yet makes it re-read them once.
    So a running api keeps opening values while and after they are re-sealed with a new key.
    """

    def __init__(self, path: Path, previous: list[Path] | None = None) -> None:
        self.path = path
        self.previous = list(previous or [])
        self._seen: tuple[int, int, int] | None = None
        self.reload(create=True)

    def __repr__(self) -> str:
        return f"KeyRing(keys={len(self._keys)})"

    def reload(self, *, create: bool = False) -> None:
        current = read_or_create_key(self.path) if create else self.path.read_bytes().strip()
        others = [p.read_bytes().strip() for p in [*backup_paths(self.path), *self.previous] if p.exists()]
        self._load([current, *(m for m in others if len(m) >= 32)])
        self._seen = _stamp(self.path)

    def refresh(self) -> bool:
        """Re-read the keys if the key file changed since the last read; whether it did."""
        try:
            if _stamp(self.path) == self._seen:
                return False
            self.reload()
        except (OSError, ValueError) as exc:  # keep the keys in memory; say why the file cannot be read
            log.error("secret key file unreadable; keeping the keys in memory", path=str(self.path), error=str(exc))
            return False
        log.info("secret keys reloaded", path=str(self.path), keys=len(self._keys))
        return True

    def _key(self, key_id: bytes) -> bytes | None:
        key = self._keys.get(key_id)
        if key is None:
            try:
                self.reload()
            except (OSError, ValueError):
                return None
            key = self._keys.get(key_id)
        return key


def open_box(path: Path, previous: list[Path] | None = None) -> KeyRing:
    """The box of the key file at ``path`` (created if missing), its backups and older key files for reading."""
    return KeyRing(path, previous)
