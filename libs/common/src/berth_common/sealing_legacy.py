"""Sealed texts stored before the current format (``berth_common.sealing``): they still open.

- The api's deployment snapshots: ``sealed:v1:`` then the standard base64 of the sealed bytes
  (``0x01 | key id | nonce | ciphertext+tag``), the same bytes the current format holds, armoured differently.
- The scheduler's deployment rows: ``sealed:`` then a Fernet token under ``urlsafe_b64(sha256(label +
  secret))`` (:attr:`berth_common.sealing.Purpose.fernet_label`), with no associated data.

Nothing seals in these formats any more; key rotation (the api's ``rotate-key``, the notifier's start)
re-seals what it finds in the current one, and a scheduler row lives only as long as its rollout.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth_common.sealing import Keyring

FERNET_PREFIX = "sealed:"
_API_TEXT_PREFIX = "sealed:v1:"


def fernet_key(label: bytes, secret: bytes) -> bytes:
    """The Fernet key a purpose with a Fernet label used for ``secret``."""
    return base64.urlsafe_b64encode(hashlib.sha256(label + secret).digest())


def _api_text(token: str) -> bytes | None:
    if not token.startswith(_API_TEXT_PREFIX):
        return None
    try:
        blob = base64.b64decode(token[len(_API_TEXT_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    from berth_common.sealing import MIN_BLOB, VERSION

    return blob if len(blob) >= MIN_BLOB and blob[:1] == VERSION else None


def _open_fernet(ring: Keyring, token: str) -> str:
    from cryptography.fernet import Fernet, InvalidToken

    from berth_common.sealing import UnsealError

    data = token[len(FERNET_PREFIX) :].encode()
    for key in ring.fernet:
        try:
            return Fernet(key).decrypt(data).decode()
        except InvalidToken:
            continue
    raise UnsealError(f"a sealed value does not open with any configured key ({ring.purpose.missing_key})")


def open_legacy_text(ring: Keyring, token: str, aad: str) -> str | None:
    """The plaintext of ``token`` if it is in a format stored before the current one; None if it is not.

    Raises ``UnsealError`` if it is one but does not open.
    """
    blob = _api_text(token)
    if blob is not None:
        return ring.unseal_bytes(blob, aad)
    if ring.fernet and token.startswith(FERNET_PREFIX) and not token.startswith(_API_TEXT_PREFIX):
        return _open_fernet(ring, token)
    return None
