"""S3 requests as data (pure): each operation Berth uses, built and signed (SigV4) for one bucket, and the
parsers of S3's XML answers. ``berth_common.s3.client`` executes them; tests compare them exactly.

Operations: put, head, get, delete, list (v2), and multipart upload (create, upload part, complete, abort).
A bucket is addressed path style (``http://host/bucket/key``, the usual choice for S3-compatible stores)
or virtual-host style (``https://bucket.host/key``, AWS's default).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from berth_common.s3.signing import EMPTY_SHA256, Credentials, amz_date, authorization, canonical_query, uri_encode

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
REGION_PATTERN = r"^[a-z0-9-]{1,32}$"
_NS = re.compile(r"^\{[^}]*\}")


class S3RequestError(ValueError):
    """An endpoint, bucket or key Berth will not send to S3."""


@dataclass(frozen=True)
class Bucket:
    """Where objects go: ``endpoint`` (``scheme://host[:port]``, no path), the bucket, its region, the style."""

    endpoint: str
    bucket: str
    region: str = "us-east-1"
    path_style: bool = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise S3RequestError(f"the S3 endpoint must be http(s)://host[:port], not {self.endpoint[:100]!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            raise S3RequestError("the S3 endpoint must be http(s)://host[:port], without a path or credentials")
        if not re.fullmatch(BUCKET_PATTERN, self.bucket):
            raise S3RequestError(f"invalid bucket name {self.bucket[:70]!r}")
        if not re.fullmatch(REGION_PATTERN, self.region):
            raise S3RequestError(f"invalid region {self.region[:40]!r}")

    @property
    def scheme(self) -> str:
        return urlsplit(self.endpoint).scheme

    @property
    def host(self) -> str:
        """The ``Host`` header: the endpoint's host and port, prefixed by the bucket in virtual-host style."""
        netloc = urlsplit(self.endpoint).netloc
        return netloc if self.path_style else f"{self.bucket}.{netloc}"

    def path(self, key: str = "") -> str:
        """The URI-encoded path of ``key`` (``""``: the bucket itself)."""
        if len(key.encode()) > 1024 or "\x00" in key:
            raise S3RequestError("an object key is at most 1024 bytes, without NUL")
        encoded = uri_encode(key, keep_slash=True)
        if self.path_style:
            return f"/{self.bucket}/{encoded}" if key else f"/{self.bucket}"
        return f"/{encoded}"


@dataclass(frozen=True)
class S3Request:
    """A signed request: send ``method`` to ``url`` with exactly ``headers`` and ``body``."""

    operation: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = field(default=b"", repr=False)


def signed(
    operation: str,
    bucket: Bucket,
    creds: Credentials,
    now: datetime,
    method: str,
    key: str = "",
    query: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    extra: dict[str, str] | None = None,
) -> S3Request:
    """Build and sign one request; the payload is hashed (``x-amz-content-sha256``), never left unsigned."""
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    headers = {"host": bucket.host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date(now)}
    headers.update({k.lower(): v for k, v in (extra or {}).items()})
    path = bucket.path(key)
    headers["authorization"] = authorization(
        creds, method, path, query, headers, payload_hash, now, bucket.region, "s3"
    )
    qs = canonical_query(query)
    url = f"{bucket.scheme}://{bucket.host}{path}" + (f"?{qs}" if qs else "")
    return S3Request(operation, method, url, headers, body)


def put_object(b: Bucket, c: Credentials, now: datetime, key: str, body: bytes) -> S3Request:
    return signed("PutObject", b, c, now, "PUT", key, body=body, extra={"content-length": str(len(body))})


def head_object(b: Bucket, c: Credentials, now: datetime, key: str) -> S3Request:
    return signed("HeadObject", b, c, now, "HEAD", key)


def get_object(b: Bucket, c: Credentials, now: datetime, key: str) -> S3Request:
    return signed("GetObject", b, c, now, "GET", key)


def delete_object(b: Bucket, c: Credentials, now: datetime, key: str) -> S3Request:
    return signed("DeleteObject", b, c, now, "DELETE", key)


def list_objects(
    b: Bucket, c: Credentials, now: datetime, prefix: str = "", token: str | None = None, max_keys: int = 1000
) -> S3Request:
    query = [("list-type", "2"), ("max-keys", str(max_keys)), ("prefix", prefix)]
    if token:
        query.append(("continuation-token", token))
    return signed("ListObjectsV2", b, c, now, "GET", "", query)


def create_multipart(b: Bucket, c: Credentials, now: datetime, key: str) -> S3Request:
    return signed("CreateMultipartUpload", b, c, now, "POST", key, [("uploads", "")])


def upload_part(
    b: Bucket, c: Credentials, now: datetime, key: str, upload_id: str, number: int, body: bytes
) -> S3Request:
    query = [("partNumber", str(number)), ("uploadId", upload_id)]
    return signed("UploadPart", b, c, now, "PUT", key, query, body, {"content-length": str(len(body))})


def complete_body(parts: Sequence[tuple[int, str]]) -> bytes:
    """The ``CompleteMultipartUpload`` document listing every part's number and ETag, in order."""
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_text(etag)}</ETag></Part>" for n, etag in sorted(parts)
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def complete_multipart(
    b: Bucket, c: Credentials, now: datetime, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
) -> S3Request:
    body = complete_body(parts)
    extra = {"content-length": str(len(body)), "content-type": "application/xml"}
    return signed("CompleteMultipartUpload", b, c, now, "POST", key, [("uploadId", upload_id)], body, extra)


def abort_multipart(b: Bucket, c: Credentials, now: datetime, key: str, upload_id: str) -> S3Request:
    return signed("AbortMultipartUpload", b, c, now, "DELETE", key, [("uploadId", upload_id)])


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    last_modified: str
    etag: str = ""


@dataclass(frozen=True)
class Listing:
    objects: list[S3Object]
    next_token: str | None


def _children(root: ET.Element) -> dict[str, str]:
    return {_NS.sub("", child.tag): (child.text or "") for child in root}


def parse_xml(body: bytes) -> ET.Element | None:
    if not body.strip() or b"<!DOCTYPE" in body.upper().replace(b"<!doctype", b"<!DOCTYPE"):
        return None  # S3 answers have no DTD: one with entities is refused, never expanded
    try:
        return ET.fromstring(body)  # noqa: S314 (no DTD reaches the parser)
    except ET.ParseError:
        return None


def parse_error(body: bytes) -> tuple[str, str]:
    """(``Code``, ``Message``) of S3's error document; empty strings when the body is not one."""
    root = parse_xml(body)
    if root is None:
        return "", ""
    found = _children(root)
    return found.get("Code", ""), found.get("Message", "")


def parse_upload_id(body: bytes) -> str:
    root = parse_xml(body)
    upload_id = _children(root).get("UploadId", "") if root is not None else ""
    if not upload_id:
        raise S3RequestError("S3 answered CreateMultipartUpload without an UploadId")
    return upload_id


def parse_listing(body: bytes) -> Listing:
    root = parse_xml(body)
    if root is None:
        raise S3RequestError("S3 answered ListObjectsV2 with no document")
    objects = []
    token: str | None = None
    truncated = False
    for child in root:
        tag = _NS.sub("", child.tag)
        if tag == "Contents":
            f = _children(child)
            objects.append(
                S3Object(f.get("Key", ""), int(f.get("Size", "0")), f.get("LastModified", ""), f.get("ETag", ""))
            )
        elif tag == "NextContinuationToken":
            token = child.text or None
        elif tag == "IsTruncated":
            truncated = (child.text or "").strip() == "true"
    return Listing(objects, token if truncated else None)
