"""API tokens: ``berth_<prefix>_<secret>``; only a SHA-256 of the secret is stored.

The prefix is public (it identifies the row and is shown in listings); the secret is 256 random bits
(``secrets.token_urlsafe(32)``). Verification compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

SCHEME = "berth"
PREFIX_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32  # 43 url-safe characters
TOKEN_RE = re.compile(r"^berth_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    prefix: str
    secret: str
    hash: str

    @property
    def plaintext(self) -> str:
        return f"{SCHEME}_{self.prefix}_{self.secret}"

    def __repr__(self) -> str:  # never print the secret by accident
        return f"NewToken(prefix={self.prefix!r})"


@dataclass(frozen=True)
class ShownOnce:
    """A row just created with a secret that is shown this once; its repr names the row, never the secret
    (a subclass adds the secret's field, declared with ``repr=False`` so that this repr stays)."""

    row: dict[str, Any]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.row.get('id')!r})"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate() -> NewToken:
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewToken(prefix=prefix, secret=secret, hash=hash_secret(secret))


def parse(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, else None (no work done on arbitrary long input)."""
    if len(token) > 80:
        return None
    m = TOKEN_RE.fullmatch(token)
    return (m.group(1), m.group(2)) if m else None


def verify(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())
