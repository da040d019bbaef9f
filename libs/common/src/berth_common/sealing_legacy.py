"""Sealed texts stored before the current format (``berth_common.sealing``): how to recognise and open them.

- The api's deployment snapshots: ``sealed:v1:`` then the standard base64 of the sealed bytes
  (``0x01 | key id | nonce | ciphertext+tag``), the same bytes the current format holds, armoured differently.
- The scheduler's deployment rows: ``sealed:`` then a Fernet token under ``urlsafe_b64(sha256(label +
  secret))`` (``berth_common.sealing.Purpose.fernet_label``), with no associated data.

Nothing seals in these formats any more; key rotation (the api's ``rotate-key``, the notifier's start)
re-seals what it finds in the current one, and a scheduler row lives only as long as its rollout.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

FERNET_PREFIX = "sealed:"
API_TEXT_PREFIX = "sealed:v1:"
_BLOB_VERSION = b"\x01"
_BLOB_MIN = 1 + 8 + 12 + 16  # version, key id, nonce, tag


def fernet_key(label: bytes, secret: bytes) -> bytes:
    """The Fernet key a purpose with a Fernet label used for ``secret``."""
    return base64.urlsafe_b64encode(hashlib.sha256(label + secret).digest())


def api_text_blob(token: str) -> bytes | None:
    """The sealed bytes inside an api snapshot text of the former armour; None if ``token`` is not one."""
    if not token.startswith(API_TEXT_PREFIX):
        return None
    try:
        blob = base64.b64decode(token[len(API_TEXT_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return blob if len(blob) >= _BLOB_MIN and blob[:1] == _BLOB_VERSION else None


def is_fernet_text(token: str) -> bool:
    """Whether ``token`` has the form of a scheduler row's former Fernet value."""
    return token.startswith(FERNET_PREFIX) and not token.startswith(API_TEXT_PREFIX)


def open_fernet(keys: tuple[bytes, ...], token: str) -> str | None:
    """The plaintext of a former Fernet value under one of ``keys``; None if none opens it."""
    from cryptography.fernet import Fernet, InvalidToken

    data = token[len(FERNET_PREFIX) :].encode()
    for key in keys:
        try:
            return Fernet(key).decrypt(data).decode()
        except InvalidToken:
            continue
    return None
