"""The stream of a backup, in three stages that run at once: reading the dump tool's output, compressing it
(in a worker thread: zlib and zstd release the GIL, so the event loop keeps reading and uploading), and
writing it to every destination with its SHA-256 and size. Bounded queues between the stages keep memory
flat; the dump tool is never left waiting on a full pipe while a part is being uploaded."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

BATCH = 256 * 1024  # output gathered before one compression step in the worker thread
RAW_DEPTH = 16  # output messages waiting to be compressed
OUT_DEPTH = 4  # compressed batches waiting to be written


class Codec(Protocol):
    def feed(self, data: bytes) -> bytes: ...


@dataclass
class Written:
    size: int
    sha256: hashlib._Hash


async def _stage(source: AsyncIterator[bytes], queue: asyncio.Queue[bytes | None]) -> None:
    try:
        async for chunk in source:
            await queue.put(chunk)
    except asyncio.CancelledError:  # the stream is stopped: nobody may read the queue any more, never wait on it
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
        raise
    except BaseException:
        await _close(queue)
        raise
    await _close(queue)


async def _close(queue: asyncio.Queue[bytes | None]) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(None)
        return
    await queue.put(None)


async def _drained(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await queue.get()) is not None:
        yield item


async def _compressed(raw: AsyncIterator[bytes], codec: Codec) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    held = 0
    async for chunk in raw:
        batch.append(chunk)
        held += len(chunk)
        if held >= BATCH:
            data = await asyncio.to_thread(codec.feed, b"".join(batch))
            batch, held = [], 0
            if data:
                yield data
    if batch:
        data = await asyncio.to_thread(codec.feed, b"".join(batch))
        if data:
            yield data


async def pump(
    chunks: AsyncIterator[bytes], codec: Codec, writers: Sequence[Callable[[bytes], Awaitable[None]]]
) -> Written:
    """Read ``chunks`` to their end, compress them with ``codec`` (not ended: the caller ends it once the
    tool's exit status is known) and write the output to each of ``writers`` in order; the size and SHA-256
    of what was written. An error in any stage stops the others and is raised."""
    raw: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=RAW_DEPTH)
    out: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=OUT_DEPTH)
    written = Written(0, hashlib.sha256())
    reading = asyncio.create_task(_stage(chunks, raw))
    compressing = asyncio.create_task(_stage(_compressed(_drained(raw), codec), out))
    try:
        async for data in _drained(out):
            written.sha256.update(data)
            written.size += len(data)
            for write in writers:
                await write(data)
        await compressing
        await reading
    finally:
        for task in (reading, compressing):
            if not task.done():
                task.cancel()
        for task in (reading, compressing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return written
