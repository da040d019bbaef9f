"""The three-stage stream of a backup (read, compress in a worker thread, write): what it writes is the
compressed input, in order, with its size and SHA-256; an error in any stage stops the others and is raised."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from berth_scheduler.domain import backups as dom
from berth_scheduler.usecases.backup_stream import pump


async def _chunks(data: bytes, size: int = 20_000, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and i == fail_after:
            raise OSError("the output of pg_dump was cut")
        await asyncio.sleep(0)
        yield data[start : start + size]


async def test_what_is_written_is_the_compressed_input_in_order() -> None:
    data = os.urandom(600_000) + b"berth " * 200_000  # incompressible, then very compressible
    codec = dom.compressor("gzip")
    got: list[bytes] = []
    copy: list[bytes] = []

    async def slow(chunk: bytes) -> None:  # an upload that takes its time: the stages go on meanwhile
        await asyncio.sleep(0.001)
        got.append(chunk)

    async def fast(chunk: bytes) -> None:
        copy.append(chunk)

    written = await pump(_chunks(data), codec, [slow, fast])
    body = b"".join(got) + codec.end()
    assert gzip.decompress(body) == data
    assert b"".join(copy) == b"".join(got)
    assert written.size == len(b"".join(got))
    assert written.sha256.hexdigest() == hashlib.sha256(b"".join(got)).hexdigest()


async def test_an_error_in_a_stage_stops_the_stream_and_is_raised() -> None:
    async def keep(chunk: bytes) -> None:
        return None

    with pytest.raises(OSError, match="was cut"):
        await pump(_chunks(os.urandom(2_000_000), fail_after=30), dom.compressor("gzip"), [keep])

    async def refuse(chunk: bytes) -> None:
        raise ConnectionError("SignatureDoesNotMatch")

    with pytest.raises(ConnectionError, match="SignatureDoesNotMatch"):
        await asyncio.wait_for(pump(_chunks(os.urandom(2_000_000)), dom.compressor("gzip"), [refuse]), 10)
