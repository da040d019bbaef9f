"""AWS Signature Version 4 (pure): the canonical request, the string to sign, the signing key and the
``Authorization`` header of one request, exactly as AWS specifies them, for S3 and S3-compatible stores.

Only ``hashlib`` and ``hmac``: no SDK. The secret key is held in a :class:`Credentials` whose repr hides it,
so a logged or raised object never shows it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from berth_common.redaction import MASK

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credentials:
    """An access key pair; ``repr`` never shows the secret key."""

    access_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='{MASK}')"


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 percent-encoding as SigV4 wants it: every byte but ``A-Za-z0-9-._~`` (and ``/`` in a path)."""
    return quote(text, safe="/~" if keep_slash else "~")


def amz_date(now: datetime) -> str:
    """``20150830T123600Z``: the request time in the form SigV4 signs."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """Parameters encoded, then sorted by name (then value), joined with ``&``."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    folded: dict[str, str] = {}
    for name, value in headers.items():
        folded[name.lower().strip()] = " ".join(value.strip().split())
    names = sorted(folded)
    return "".join(f"{n}:{folded[n]}\n" for n in names), ";".join(names)


def canonical_request(
    method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """(the canonical request, the signed header names). ``path`` is already URI-encoded."""
    lines, signed = _canonical_headers(headers)
    text = "\n".join([method.upper(), path or "/", canonical_query(query), lines, signed, payload_hash])
    return text, signed


def scope(now: datetime, region: str, service: str) -> str:
    return f"{now.astimezone(UTC):%Y%m%d}/{region}/{service}/aws4_request"


def string_to_sign(canonical: str, now: datetime, region: str, service: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return "\n".join([ALGORITHM, amz_date(now), scope(now, region, service), digest])


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over the day (``YYYYMMDD``), the region, the service and ``aws4_request``."""
    k = _hmac(f"AWS4{secret_key}".encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def authorization(
    creds: Credentials,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
    now: datetime,
    region: str,
    service: str = "s3",
) -> str:
    """The ``Authorization`` header of a request whose ``headers`` (those signed) include ``host`` and
    ``x-amz-date``."""
    canonical, signed = canonical_request(method, path, query, headers, payload_hash)
    key = signing_key(creds.secret_key, f"{now.astimezone(UTC):%Y%m%d}", region, service)
    signature = hmac.new(key, string_to_sign(canonical, now, region, service).encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={creds.access_key}/{scope(now, region, service)}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
