"""The backup worker's stream (run in its own short-lived process by ``entrypoints.backup_worker``): the
engine's exec output, compressed (``domain.backups`` codec) and written to the S3 parts and the directory
files of a :class:`~berth_scheduler.domain.backup_jobs.DumpJob`, with its SHA-256 and size.

The stream is a database dump tool's (an exec in the database's container) or a volume's tar (a helper
container the scheduler made, attached and started here). The process holds only this stream, Berth's S3 client (httpx) and an asyncio connection to the engine's
unix socket: no message catalogue (pydantic), no database (SQLAlchemy), no NATS client, no aiodocker. So
its memory is the stream's (bounded stages and at most two parts per upload), whatever the dump's size,
and the scheduler's own footprint does not grow while a backup runs.

Every destination is written here: S3, directories on the control plane's server, and directories on
other servers, over SFTP on an SSH connection of this process (``adapters.sftp_files``: the server's key
and pinned host key came in the job), so the bytes of none of them pass through the scheduler.

The worker ends the tool's run and its writes; the scheduler completes, verifies or aborts the objects.
When the job is cancelled (the scheduler closed stdin, ended or was killed), the worker aborts the uploads
and removes the partial files itself before it exits, so nothing is left uploading behind a dead parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO

from berth_common.s3.client import S3Client, S3Error
from berth_scheduler.adapters.engine_exec import EngineAttach, EngineExec, EngineExecError
from berth_scheduler.adapters.part_upload import PartError, PartUploader, client
from berth_scheduler.adapters.sftp_files import RemoteFile, Sessions, SftpError, read_remote
from berth_scheduler.domain import backups as dom
from berth_scheduler.domain.backup_jobs import CheckJob, DumpJob, DumpResult, progress_line
from berth_scheduler.usecases.backup_stream import pump

PROGRESS_EVERY = 16 << 20  # a progress line per this many compressed bytes
ABORT_S = 15.0  # the uploads' abort when the job is cancelled, at most


def peak_rss_kb() -> int:
    """This process's VmHWM (its peak resident set) in kB, 0 where /proc is not there."""
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status").read().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class _File:
    def __init__(self, path: str) -> None:
        self.path = path
        self.file: BinaryIO | None = None

    def _fail(self, exc: OSError) -> PartError:
        return PartError(f"cannot write {self.path.removesuffix('.partial')}: {exc.strerror or exc}")

    async def open(self) -> None:
        try:
            self.file = await asyncio.to_thread(open, self.path, "wb")
        except OSError as exc:
            raise self._fail(exc) from None

    async def write(self, data: bytes) -> None:
        assert self.file is not None
        try:
            await asyncio.to_thread(self.file.write, data)
        except OSError as exc:
            raise self._fail(exc) from None

    async def sync(self) -> None:
        file = self.file
        assert file is not None

        def run() -> None:
            file.flush()
            os.fsync(file.fileno())
            file.close()

        try:
            await asyncio.to_thread(run)
        except OSError as exc:
            raise self._fail(exc) from None

    async def remove(self) -> None:
        with contextlib.suppress(OSError):
            if self.file is not None:
                self.file.close()
            os.unlink(self.path)


async def run(job: DumpJob, emit: Callable[[str], None]) -> DumpResult:
    """Stream the job's dump to its destinations; the result (``reason`` set when it is not good). A
    cancel (the scheduler went away) aborts the uploads and removes the files, then propagates."""
    s3 = [client(u, job.s3_timeout_s) for u in job.uploads]
    uploads = [PartUploader(c, u.key, u.upload_id, job.part_size) for c, u in zip(s3, job.uploads, strict=True)]
    files: list[_File | RemoteFile] = [_File(path) for path in job.files]
    sessions = Sessions(job.s3_timeout_s)
    files += [RemoteFile(sessions, where) for where in job.remote]
    done = False
    try:
        for f in files:
            await f.open()
        codec = dom.packing(job.compression, job.key or None).packer()
        counted = [0, PROGRESS_EVERY]

        async def count(data: bytes) -> None:
            counted[0] += len(data)
            if counted[0] >= counted[1]:
                counted[1] += PROGRESS_EVERY
                emit(progress_line(counted[0]))

        writers = [*(u.write for u in uploads), *(f.write for f in files), count]
        stream = EngineAttach if job.attach else EngineExec
        async with stream(job.socket, job.api_version, job.container, job.argv, job.env, job.stdin) as ex:
            written = await pump(ex.chunks(), codec, writers)
            code = await ex.exit_code()
            if code != 0:
                return _ended(DumpResult(exit_code=code, reason=dom.exit_reason(ex.tool, code, ex.error_text())))
        tail = codec.end()
        written.sha256.update(tail)
        for write in writers:
            await write(tail)
        for u in uploads:
            await u.flush()
        for f in files:
            await f.sync()
        done = True
        parts = [[[n, etag] for n, etag in u.parts] for u in uploads]
        return _ended(DumpResult(written.size + len(tail), written.sha256.hexdigest(), parts, exit_code=0))
    except EngineExecError as exc:
        return _ended(DumpResult(reason=str(exc), status=exc.status or None))
    except PartError as exc:
        return _ended(DumpResult(reason=str(exc)))
    except asyncio.CancelledError:
        for u in uploads:
            u.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_abort(job, s3, files), ABORT_S)
        raise
    finally:
        for u in uploads:
            u.cancel()
        if not done:
            for f in files:
                await f.remove()
        await sessions.close()
        for c in s3:
            with contextlib.suppress(Exception):
                await c.close()


async def check(job: CheckJob, emit: Callable[[str], None], chunk: int = 1 << 20) -> DumpResult:
    """Read the stored object to its end: its size and SHA-256 (``reason``: why it cannot be read)."""
    sha, size, note = hashlib.sha256(), 0, PROGRESS_EVERY

    def add(data: bytes) -> None:
        nonlocal size, note
        sha.update(data)
        size += len(data)
        if size >= note:
            note += PROGRESS_EVERY
            emit(progress_line(size))

    if job.remote is not None:
        try:
            async with read_remote(job.remote, chunk) as chunks:
                async for data in chunks:
                    add(data)
        except SftpError as exc:
            return _ended(DumpResult(reason=str(exc)))
        return _ended(DumpResult(size, sha.hexdigest()))
    if job.source is None:
        try:
            with open(job.file, "rb") as f:  # noqa: ASYNC230 (a local file, read in pieces)
                while data := await asyncio.to_thread(f.read, chunk):
                    add(data)
        except OSError as exc:
            return _ended(DumpResult(reason=f"cannot read {job.file}: {exc.strerror or exc}"))
        return _ended(DumpResult(size, sha.hexdigest()))
    u = job.source
    s3 = client(u, job.s3_timeout_s)
    try:
        async with s3.get(u.key, chunk) as chunks:
            async for data in chunks:
                add(data)
    except S3Error as exc:
        return _ended(DumpResult(reason=str(exc)))
    finally:
        await s3.close()
    return _ended(DumpResult(size, sha.hexdigest()))


def _ended(result: DumpResult) -> DumpResult:
    return DumpResult(**{**result.__dict__, "peak_rss_kb": peak_rss_kb()})


async def _abort(job: DumpJob, s3: list[S3Client], files: list[_File | RemoteFile]) -> None:
    for c, u in zip(s3, job.uploads, strict=True):
        with contextlib.suppress(S3Error, OSError, TimeoutError):
            await c.abort_multipart(u.key, u.upload_id)
    for f in files:
        await f.remove()
