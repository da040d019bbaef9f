"""The one adapter that executes S3 requests (``berth_common.s3.requests``) with httpx, streaming.

Every failure is an :class:`S3Error` carrying S3's own error code and message (``InvalidAccessKeyId``,
``SignatureDoesNotMatch``, ``NoSuchBucket``, ...) or what the connection did (refused, timed out); it
names the operation, the endpoint and the bucket, never a credential.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx

from berth_common.outbound import OutboundPolicy
from berth_common.outbound_net import OutboundRefused, guarded_transport, redirect_hook, verified_tls
from berth_common.s3 import requests as rq
from berth_common.s3.signing import Credentials


class S3Error(RuntimeError):
    """An S3 operation failed; ``code`` is S3's error code (or ``ConnectionError`` / ``Timeout``)."""

    def __init__(self, operation: str, where: str, code: str, message: str, status: int = 0) -> None:
        self.operation, self.code, self.status = operation, code, status
        detail = f"{code}: {message}" if message else code
        super().__init__(f"S3 {operation} on {where} failed: {detail}")


PIECE = 256 << 10


def _content(req: rq.S3Request) -> bytes | AsyncIterator[bytes] | None:
    """The request's body for httpx: a large one (an upload part) in pieces of a view of it, written one
    after the other, so the connection never holds a second copy of the whole part (the length is in the
    signed headers, so it is not sent chunked)."""
    body = req.body
    if len(body) <= PIECE or "content-length" not in req.headers:
        return body or None

    async def pieces() -> AsyncIterator[bytes]:
        view = memoryview(body)
        for start in range(0, len(view), PIECE):
            yield bytes(view[start : start + PIECE])

    return pieces()


class S3Client:
    """Operations on one bucket; ``clock`` gives the signing time (a test may fix it)."""

    def __init__(
        self,
        bucket: rq.Bucket,
        creds: Credentials,
        *,
        timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        """``policy``: the outbound rule of the team whose store this is (``berth_common.outbound``): every
        connection goes to an address it allows, and a redirect to a refused one fails (None: unchecked, for
        stores the platform itself chose)."""
        self.bucket, self.creds, self.clock = bucket, creds, clock
        hooks = {}
        if policy is not None and transport is None:
            transport, hooks = guarded_transport(policy), {"response": [redirect_hook(policy)]}
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            verify=verified_tls(),  # used only without a transport given (httpx makes its own then)
            trust_env=False,
            event_hooks=hooks,
        )

    def __repr__(self) -> str:
        return f"S3Client({self.where})"

    @property
    def where(self) -> str:
        return f"{self.bucket.endpoint} bucket {self.bucket.bucket}"

    async def close(self) -> None:
        await self._http.aclose()

    def _fail(self, req: rq.S3Request, code: str, message: str, status: int = 0) -> S3Error:
        return S3Error(req.operation, self.where, code, message, status)

    async def send(self, req: rq.S3Request, *, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        """Send ``req`` and read the whole answer (small answers only: not for GetObject)."""
        try:
            resp = await self._http.request(req.method, req.url, headers=req.headers, content=_content(req))
        except httpx.TimeoutException:
            raise self._fail(req, "Timeout", "the endpoint did not answer in time") from None
        except OutboundRefused as exc:
            raise self._fail(req, "OutboundRefused", exc.reason) from None
        except httpx.TransportError as exc:
            raise self._fail(req, "ConnectionError", str(exc) or type(exc).__name__) from None
        if resp.status_code not in ok:
            raise self._error(req, resp.status_code, resp.content)
        return resp

    def _error(self, req: rq.S3Request, status: int, body: bytes) -> S3Error:
        code, message = rq.parse_error(body)
        if not code:  # HEAD answers carry no body
            code = {403: "AccessDenied", 404: "NotFound"}.get(status, f"HTTP{status}")
        return self._fail(req, code, message, status)

    async def put(self, key: str, body: bytes) -> str:
        resp = await self.send(rq.put_object(self.bucket, self.creds, self.clock(), key, body))
        return str(resp.headers.get("etag", ""))

    async def head(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        try:
            resp = await self.send(rq.head_object(self.bucket, self.creds, self.clock(), key))
        except S3Error as exc:
            if exc.status == 404 and exc.code in ("NotFound", "NoSuchKey"):
                return None
            raise
        return int(resp.headers.get("content-length", "0"))

    async def delete(self, key: str) -> None:
        await self.send(rq.delete_object(self.bucket, self.creds, self.clock(), key), ok=(200, 204))

    async def objects(self, prefix: str) -> list[rq.S3Object]:
        """Every object under ``prefix`` (all pages)."""
        out: list[rq.S3Object] = []
        token: str | None = None
        while True:
            resp = await self.send(rq.list_objects(self.bucket, self.creds, self.clock(), prefix, token))
            listing = rq.parse_listing(resp.content)
            out.extend(listing.objects)
            token = listing.next_token
            if not token:
                return out

    async def create_multipart(self, key: str) -> str:
        resp = await self.send(rq.create_multipart(self.bucket, self.creds, self.clock(), key))
        return rq.parse_upload_id(resp.content)

    async def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        req = rq.upload_part(self.bucket, self.creds, self.clock(), key, upload_id, number, body)
        etag = str((await self.send(req)).headers.get("etag", ""))
        if not etag:
            raise self._fail(req, "MissingETag", "the part was answered without an ETag")
        return etag

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        req = rq.complete_multipart(self.bucket, self.creds, self.clock(), key, upload_id, parts)
        resp = await self.send(req)
        code, message = rq.parse_error(resp.content)  # S3 may answer 200 with an error document
        if code:
            raise self._fail(req, code, message, resp.status_code)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        req = rq.abort_multipart(self.bucket, self.creds, self.clock(), key, upload_id)
        await self.send(req, ok=(200, 204, 404))

    @asynccontextmanager
    async def get(self, key: str, chunk: int = 1 << 20) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream an object's bytes (``async with client.get(key) as chunks: async for c in chunks``)."""
        req = rq.get_object(self.bucket, self.creds, self.clock(), key)
        try:
            async with self._http.stream(req.method, req.url, headers=req.headers) as resp:
                if resp.status_code != 200:
                    raise self._error(req, resp.status_code, await resp.aread())
                yield resp.aiter_bytes(chunk)
        except httpx.TimeoutException:
            raise self._fail(req, "Timeout", "the endpoint did not answer in time") from None
        except OutboundRefused as exc:
            raise self._fail(req, "OutboundRefused", exc.reason) from None
        except httpx.TransportError as exc:
            raise self._fail(req, "ConnectionError", str(exc) or type(exc).__name__) from None
