"""A restore's stream in the backup worker process (``entrypoints.backup_worker``): the stored object read
from S3, the control plane's disk or a directory on another server (over SFTP on a connection of the
worker's own, ``adapters.sftp_files``), its SHA-256 computed on the way, decompressed in bounded pieces
and written into the restore tool's stdin (an exec in the database's container, or a helper container the
scheduler made for a volume). Like the backup's stream, it holds no catalogue, database or bus client,
so its memory is the stream's whatever the object's size. The scheduler runs the steps around it (the
new database made first, the check before writing over data, the cleanup of a failed one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from berth_common.s3.client import S3Error
from berth_scheduler.adapters.engine_exec import EngineAttach, EngineExec, EngineExecError
from berth_scheduler.adapters.part_upload import client
from berth_scheduler.adapters.sftp_files import SftpError, read_remote
from berth_scheduler.domain import backups as dom
from berth_scheduler.domain.backup_jobs import DumpResult, RestoreJob, progress_line
from berth_scheduler.usecases.backup_worker import peak_rss_kb
from berth_scheduler.usecases.restore_stream import feed


class _Unreadable(Exception):
    pass


@contextlib.asynccontextmanager
async def _object(job: RestoreJob, chunk: int = 1 << 20) -> AsyncIterator[AsyncIterator[bytes]]:
    if job.remote is not None:
        async with read_remote(job.remote, chunk) as chunks:
            yield chunks
        return
    if job.source is None:
        try:
            f = await asyncio.to_thread(open, job.file, "rb")
        except OSError as exc:
            raise _Unreadable(f"cannot read {job.file}: {exc.strerror or exc}") from None

        async def local() -> AsyncIterator[bytes]:
            while data := await asyncio.to_thread(f.read, chunk):
                yield data

        try:
            yield local()
        finally:
            f.close()
        return
    u = job.source
    s3 = client(u, job.s3_timeout_s)
    try:
        async with s3.get(u.key, chunk) as chunks:
            yield chunks
    except S3Error as exc:
        raise _Unreadable(str(exc)) from None
    finally:
        await s3.close()


async def restore(job: RestoreJob, emit: Callable[[str], None]) -> DumpResult:
    """Feed the object into the tool; the result (``size``: bytes written into it; ``reason`` set when it
    is not good)."""
    stream = EngineAttach if job.attach else EngineExec

    async def progress(written: int) -> None:
        emit(progress_line(written))

    try:
        async with (
            _object(job) as chunks,
            stream(job.socket, job.api_version, job.container, job.argv, job.env, feed=True) as ex,
        ):
            written, code, reason = await feed(
                chunks, dom.packing(job.compression, job.key or None).unpacker(), ex, job.sha256, progress
            )
    except (EngineExecError, _Unreadable, SftpError) as exc:
        return _ended(DumpResult(reason=str(exc), status=getattr(exc, "status", 0) or None))
    return _ended(DumpResult(written, job.sha256 if reason is None else "", exit_code=code, reason=reason))


def _ended(result: DumpResult) -> DumpResult:
    return DumpResult(**{**result.__dict__, "peak_rss_kb": peak_rss_kb()})
