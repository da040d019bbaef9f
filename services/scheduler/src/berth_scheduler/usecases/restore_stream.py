"""The stream of a restore: the stored object's chunks, their SHA-256 computed on the way, decompressed in
bounded pieces and written into the restore tool's stdin while its output is read (so neither side waits
on a full pipe). Shared by the backup worker process (``usecases.restore_worker``) and the scheduler (an
object read over SFTP); needs nothing but the codec.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from berth_scheduler.domain import backups as dom

PROGRESS_EVERY = 64 << 20  # progress is told per this many bytes restored


class Tool(Protocol):
    tool: str

    async def write(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def drain(self) -> object: ...
    async def exit_code(self) -> int: ...
    def error_text(self) -> str: ...


async def feed(
    chunks: AsyncIterator[bytes],
    codec: dom.Codec,
    tool: Tool,
    sha256: str,
    progress: Callable[[int], Awaitable[None]],
) -> tuple[int, int | None, str | None]:
    """Write the ``chunks`` unpacked by ``codec`` (decrypted and decompressed) into ``tool``: the bytes written, the tool's exit code (None: not
    waited for), and why the restore is not good (a damaged object, a SHA-256 other than ``sha256``, the
    tool's exit) or None."""
    sha, written, note = hashlib.sha256(), 0, PROGRESS_EVERY
    reader = asyncio.create_task(tool.drain())
    try:
        try:
            async for chunk in chunks:
                sha.update(chunk)
                for data in codec.pieces(chunk):
                    await tool.write(data)
                    written += len(data)
                if written >= note:
                    note += PROGRESS_EVERY
                    await progress(written)
        except dom.StreamError as exc:  # a record that does not authenticate: another key, a changed byte
            return written, None, f"the backup object cannot be read: {exc}"
        try:
            tail = codec.end()
        except ValueError as exc:
            return written, None, f"the backup object is damaged: {exc}"
        if tail:
            await tool.write(tail)
            written += len(tail)
        await tool.close_stdin()
        await reader
    finally:
        reader.cancel()
    code = await tool.exit_code()
    if sha.hexdigest() != sha256:
        return written, code, f"the object's SHA-256 is {sha.hexdigest()}, the backup recorded {sha256}"
    if code != 0:
        return written, code, dom.exit_reason(tool.tool, code, tool.error_text())
    return written, code, None
