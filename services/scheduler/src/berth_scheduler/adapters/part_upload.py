"""The parts of an open S3 multipart upload, sent as the stream fills them: at most two parts in memory (one
filling, one uploading), whatever the object's size. Used by the scheduler's ``S3Sink`` and by the backup
worker process; needs only Berth's S3 client (httpx), not the message catalogue.
"""

from __future__ import annotations

import asyncio

from berth_common.outbound import OutboundPolicy
from berth_common.s3 import Bucket, Credentials
from berth_common.s3.client import S3Client, S3Error
from berth_scheduler.domain.backup_jobs import S3Upload


class PartError(RuntimeError):
    """The store refused a part; the message is S3's (never a secret)."""


def client(upload: S3Upload, timeout_s: float) -> S3Client:
    """The client of one upload's store, connecting through the store's outbound rule."""
    return S3Client(
        Bucket(upload.endpoint.rstrip("/"), upload.bucket, upload.region, upload.path_style),
        Credentials(upload.access_key, upload.secret_key),
        timeout_s=timeout_s,
        policy=OutboundPolicy.from_entries(upload.outbound_allow, allow_private=upload.outbound_private),
    )


class PartUploader:
    """``write`` buffers and uploads full parts in the background (one in flight); ``flush`` uploads the
    rest (at least one part, so an empty object completes) and waits; ``parts`` are ``(number, etag)``."""

    def __init__(self, s3: S3Client, key: str, upload_id: str, part_size: int) -> None:
        self.s3, self.key, self.upload_id, self.part_size = s3, key, upload_id, part_size
        self.parts: list[tuple[int, str]] = []
        self._held: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Task[None] | None = None

    async def _upload(self, number: int, body: bytes) -> None:
        etag = await self.s3.upload_part(self.key, self.upload_id, number, body)
        self.parts.append((number, etag))

    async def _send(self, body: bytes) -> None:
        await self.wait()
        self._pending = asyncio.create_task(self._upload(len(self.parts) + 1, body))

    async def wait(self) -> None:
        if self._pending is not None:
            task, self._pending = self._pending, None
            try:
                await task
            except S3Error as exc:
                raise PartError(str(exc)) from None

    def _take(self, size: int) -> bytes:
        """The first ``size`` held bytes as one part (one copy: the pieces are joined once)."""
        body = b"".join(self._held)
        rest = body[size:]
        self._held, self._size = ([rest] if rest else []), len(rest)
        return body[:size] if rest else body

    async def write(self, data: bytes) -> None:
        self._held.append(data)
        self._size += len(data)
        while self._size >= self.part_size:
            await self._send(self._take(self.part_size))

    async def flush(self) -> None:
        if self._size or (not self.parts and self._pending is None):
            await self._send(self._take(self._size))
        await self.wait()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
