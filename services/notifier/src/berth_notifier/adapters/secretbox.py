"""Channel secrets at rest: AES-256-GCM, a fresh 96-bit nonce per write, the row's ids as associated data.

Blob layout: ``b"\\x01" | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag``. The key id names the key
that wrote it, so old keys can still decrypt while :meth:`SecretBox.rotate_blob` re-encrypts with the
current one. A blob copied to another channel or team does not decrypt (the AAD differs).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets as pysecrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
HKDF_SALT = b"berth-notifier-v1"
HKDF_INFO = b"channel-secrets"


class SecretUnavailableError(RuntimeError):
    """A blob was written with an unknown key or was tampered with (no value is ever included)."""


def derive(material: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(material)


def read_or_create_key_file(path: Path) -> bytes:
    """The key file's bytes; a missing one is created with 32 random bytes (hex), mode 0600."""
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = pysecrets.token_hex(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created concurrently: use that one
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
            f.flush()
            os.fsync(f.fileno())
    if len(data) < 16:
        raise ValueError(f"key file {path} holds fewer than 16 bytes")
    return data


class SecretBox:
    def __init__(self, materials: list[bytes]) -> None:
        if not materials:
            raise ValueError("at least one key is needed")
        self._keys = {self.key_id(k): k for k in (derive(m) for m in reversed(materials))}
        self.current = self.key_id(derive(materials[0]))

    @staticmethod
    def key_id(key: bytes) -> bytes:
        return hashlib.sha256(b"berth-key-id:" + key).digest()[:8]

    def encrypt(self, values: dict[str, str], aad: str) -> bytes:
        nonce = os.urandom(12)
        plain = json.dumps(values, sort_keys=True).encode()
        sealed = AESGCM(self._keys[self.current]).encrypt(nonce, plain, aad.encode())
        return VERSION + self.current + nonce + sealed

    def decrypt(self, blob: bytes, aad: str) -> dict[str, str]:
        if len(blob) < 1 + 8 + 12 + 16 or blob[:1] != VERSION:
            raise SecretUnavailableError("secret blob has an unknown format")
        key = self._keys.get(bytes(blob[1:9]))
        if key is None:
            raise SecretUnavailableError("secret was encrypted with a key that is not configured")
        try:
            plain = AESGCM(key).decrypt(bytes(blob[9:21]), bytes(blob[21:]), aad.encode())
        except InvalidTag:
            raise SecretUnavailableError("secret does not decrypt (tampered, or moved to another row)") from None
        values = json.loads(plain)
        if not isinstance(values, dict):
            raise SecretUnavailableError("secret blob holds no mapping")
        return {str(k): str(v) for k, v in values.items()}

    def is_current(self, blob: bytes) -> bool:
        return bytes(blob[1:9]) == self.current

    def rotate_blob(self, blob: bytes, aad: str) -> bytes:
        return self.encrypt(self.decrypt(blob, aad), aad)


def from_settings(key_file: Path | None, secret_key: str, previous: list[str]) -> SecretBox:
    """The current key from the key file (or BERTH_SECRET_KEY), then the previous ones."""
    current = read_or_create_key_file(key_file) if key_file is not None else secret_key.encode()
    return SecretBox([current, *(p.encode() for p in previous if p)])
