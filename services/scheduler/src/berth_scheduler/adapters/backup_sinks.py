"""Where a backup's bytes go, and where a restore reads them: an S3-compatible bucket (multipart upload in
bounded parts) or a directory on a server (the control plane's own, or another over SFTP on its SSH
connection).

A sink takes the compressed stream chunk by chunk; at most two parts are in memory per S3 destination (one
filling, one uploading), whatever the backup's size. ``finish`` completes the object only when the caller
saw the dump succeed; ``abort`` removes every trace of it (the multipart upload is aborted, a partial file
removed), so no half object is ever listed. ``verify`` lists the object back and compares its size.

The S3 client (with its XML parser) is imported with the first S3 sink or client, not with this module: the
scheduler loads this module at start, and most of its life no backup runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from berth_common.catalogue import DirectoryDestination, S3Destination
from berth_common.docker import LOCAL

if TYPE_CHECKING:
    from berth_common.s3.client import S3Client
    from berth_scheduler.adapters.part_upload import PartUploader

DEFAULT_PART = 8 << 20  # S3's parts are at least 5 MiB but the last
Ssh = Callable[[str], Awaitable[Any]]  # a server's SSH connection (``Fleet.connection``)


class SinkError(RuntimeError):
    """A destination refused the object; the message is S3's or the file system's (never a secret)."""


class Sink(Protocol):
    name: str
    key: str

    async def open(self) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def finish(self) -> None: ...
    async def verify(self, size: int) -> None: ...
    async def abort(self) -> None: ...
    async def close(self) -> None: ...


def _s3_error() -> type[Exception]:
    """S3's error class (an ``except`` clause evaluates it only when an exception reaches it)."""
    from berth_common.s3.client import S3Error

    return S3Error


def _part_error() -> type[Exception]:
    from berth_scheduler.adapters.part_upload import PartError

    return PartError


def s3_client(dest: S3Destination, timeout_s: float = 30.0) -> S3Client:
    from berth_common.s3 import Bucket, Credentials
    from berth_common.s3.client import S3Client

    bucket = Bucket(dest.endpoint.rstrip("/"), dest.bucket, dest.region, dest.path_style)
    creds = Credentials(dest.access_key, dest.reveal())
    return S3Client(bucket, creds, timeout_s=timeout_s, policy=dest.outbound_policy)


class S3Sink:
    def __init__(
        self,
        dest: S3Destination,
        key: str,
        *,
        part_size: int = DEFAULT_PART,
        on_upload: Callable[[str], object] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.name, self.key = dest.name, f"{dest.prefix}{key}"
        self.client = s3_client(dest, timeout_s)
        self.part_size, self.on_upload = part_size, on_upload
        self.upload_id: str | None = None
        self._parts: PartUploader | None = None
        self._completed = False

    async def open(self) -> None:
        try:
            self.upload_id = await self.client.create_multipart(self.key)
        except _s3_error() as exc:
            raise SinkError(str(exc)) from None
        from berth_scheduler.adapters.part_upload import PartUploader

        self._parts = PartUploader(self.client, self.key, self.upload_id, self.part_size)
        if self.on_upload is not None:
            result = self.on_upload(self.upload_id)
            if asyncio.iscoroutine(result):
                await result

    async def write(self, data: bytes) -> None:
        assert self._parts is not None
        try:
            await self._parts.write(data)
        except _part_error() as exc:
            raise SinkError(str(exc)) from None

    def adopt(self, parts: list[tuple[int, str]]) -> None:
        """The parts another process (the backup worker) uploaded into this upload: ``finish`` completes
        the object with them."""
        assert self._parts is not None
        self._parts.parts = list(parts)

    async def finish(self) -> None:
        assert self._parts is not None and self.upload_id is not None
        try:
            await self._parts.flush()
            await self.client.complete_multipart(self.key, self.upload_id, self._parts.parts)
        except _part_error() as exc:
            raise SinkError(str(exc)) from None
        except _s3_error() as exc:
            raise SinkError(str(exc)) from None
        self.upload_id = None
        self._completed = True

    async def verify(self, size: int) -> None:
        try:
            head = await self.client.head(self.key)
            listed = {o.key: o.size for o in await self.client.objects(self.key)}
        except _s3_error() as exc:
            raise SinkError(f"the object could not be listed back: {exc}") from None
        if head != size or listed.get(self.key) != size:
            raise SinkError(
                f"the object {self.key} is listed with {listed.get(self.key)} bytes (HEAD: {head}), "
                f"{size} were uploaded"
            )

    async def abort(self) -> None:
        if self._parts is not None:
            self._parts.cancel()
        if self.upload_id is not None:
            try:
                await self.client.abort_multipart(self.key, self.upload_id)
            except _s3_error():
                pass  # the store is unreachable: its lifecycle rules remove the parts; nothing is listed
            self.upload_id = None
        if self._completed:  # completed but not verified good: not left listed
            try:
                await self.client.delete(self.key)
            except _s3_error():
                pass
            self._completed = False

    async def close(self) -> None:
        await self.client.close()


class DirectorySink:
    """A file ``<path>/<key>`` on the control plane's server (``local``), written as ``.partial`` and renamed
    once the dump succeeded."""

    def __init__(self, dest: DirectoryDestination, key: str) -> None:
        self.name, self.key = dest.name, str(Path(dest.path) / key)
        self._partial = Path(f"{self.key}.partial")
        self._file: BinaryIO | None = None

    @property
    def partial(self) -> Path:
        """Where the bytes go until the dump succeeded (the backup worker writes there by name)."""
        return self._partial

    async def _io(self, what: str, fn: Callable[[], object]) -> object:
        try:
            return await asyncio.to_thread(fn)
        except OSError as exc:
            raise SinkError(f"cannot {what} {self.key}: {exc.strerror or exc}") from None

    async def open(self) -> None:
        def run() -> None:
            self._partial.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._partial.open("wb")

        await self._io("write", run)

    async def write(self, data: bytes) -> None:
        file = self._file
        assert file is not None
        await self._io("write", lambda: file.write(data))

    async def finish(self) -> None:
        file = self._file
        assert file is not None

        def run() -> None:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            self._partial.rename(self.key)

        await self._io("write", run)

    async def verify(self, size: int) -> None:
        found = await self._io("read back", lambda: Path(self.key).stat().st_size)
        if found != size:
            raise SinkError(f"the file {self.key} has {found} bytes, {size} were written")

    async def abort(self) -> None:
        def run() -> None:
            if self._file is not None:
                self._file.close()
            self._partial.unlink(missing_ok=True)
            Path(self.key).unlink(missing_ok=True)

        await self._io("remove", run)

    async def close(self) -> None:
        return None


class RemoteDirectorySink:
    """A file ``<path>/<key>`` on another server, written over SFTP on the server's SSH connection (the one
    its Docker socket is forwarded on), as ``.partial`` then renamed once the dump succeeded. When the
    backup worker streams the dump, this process only makes the ``.partial`` file and hands it over
    (``hand_over``); the worker writes it on its own connection, and ``finish`` renames it here."""

    def __init__(self, dest: DirectoryDestination, key: str, ssh: Ssh) -> None:
        self.name, self.key, self.server_id = dest.name, posixpath.join(dest.path, key), dest.server_id
        self._partial = f"{self.key}.partial"
        self._ssh = ssh
        self._sftp: Any = None
        self._file: Any = None

    async def _do(self, what: str, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except _sftp_errors() as exc:
            detail = getattr(exc, "reason", "") or str(exc)
            raise SinkError(f"cannot {what} {self.key} on server {self.server_id}: {detail}") from None

    async def open(self) -> None:
        self._sftp = await _sftp(self._ssh, self.server_id)
        await self._do("make the directory of", self._sftp.makedirs(posixpath.dirname(self.key), exist_ok=True))
        self._file = await self._do("write", self._sftp.open(self._partial, "wb"))

    @property
    def partial(self) -> str:
        """Where the bytes go until the dump succeeded (the backup worker writes there by name)."""
        return self._partial

    async def hand_over(self) -> None:
        """Close this process's handle on the ``.partial`` file it made: the backup worker writes it."""
        if self._file is not None:
            await self._do("write", self._file.close())
            self._file = None

    async def write(self, data: bytes) -> None:
        await self._do("write", self._file.write(data))

    async def finish(self) -> None:
        await self.hand_over()
        await self._do("rename", self._sftp.posix_rename(self._partial, self.key))

    async def verify(self, size: int) -> None:
        attrs = await self._do("read back", self._sftp.stat(self.key))
        if attrs.size != size:
            raise SinkError(
                f"the file {self.key} on server {self.server_id} has {attrs.size} bytes, {size} were written"
            )

    async def abort(self) -> None:
        if self._sftp is None:
            return
        with contextlib.suppress(Exception):
            if self._file is not None:
                await self._file.close()
        for path in (self._partial, self.key):
            with contextlib.suppress(Exception):
                await self._sftp.remove(path)

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None


async def _sftp(ssh: Ssh | None, server_id: str) -> Any:
    if ssh is None:
        raise SinkError(f"server {server_id} cannot be reached over SSH from here")
    try:
        conn = await ssh(server_id)
        return await conn.start_sftp_client()
    except _sftp_errors() as exc:
        raise SinkError(f"no SFTP session on server {server_id}: {exc}") from None


def _sftp_errors() -> tuple[type[BaseException], ...]:
    """What an SFTP operation raises (asyncssh is loaded with the first remote server, not before)."""
    import asyncssh

    return (OSError, asyncssh.Error)


def directory_sink(dest: DirectoryDestination, key: str, ssh: Ssh | None) -> Sink:
    if dest.server_id == LOCAL:
        return DirectorySink(dest, key)
    if ssh is None:
        raise SinkError(f"server {dest.server_id} cannot be reached over SSH from here")
    return RemoteDirectorySink(dest, key, ssh)


def inside(key: str, root: str) -> Path:
    """``key`` as a path, refused unless it is a file under ``root`` (no way out through ``..``)."""
    path = Path(os.path.normpath(key))
    if not path.is_absolute() or not str(path).startswith(os.path.normpath(root) + "/"):
        raise SinkError(f"{key} is not in the directory {root}")
    return path


@asynccontextmanager
async def read_object(
    origin: S3Destination | DirectoryDestination, key: str, ssh: Ssh | None = None, chunk: int = 1 << 20
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The bytes of a stored backup, streamed."""
    if isinstance(origin, S3Destination):
        client = s3_client(origin)
        try:
            async with client.get(key) as chunks:
                yield chunks
        except _s3_error() as exc:
            raise SinkError(str(exc)) from None
        finally:
            await client.close()
        return
    path = inside(key, origin.path)
    if origin.server_id != LOCAL:
        sftp = await _sftp(ssh, origin.server_id)
        try:
            f = await sftp.open(str(path), "rb")
        except _sftp_errors() as exc:
            sftp.exit()
            raise SinkError(f"cannot read {key} on server {origin.server_id}: {exc}") from None

        async def remote() -> AsyncIterator[bytes]:
            while data := await f.read(chunk):
                yield data

        try:
            yield remote()
        except _sftp_errors() as exc:
            raise SinkError(f"cannot read {key} on server {origin.server_id}: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                await f.close()
            sftp.exit()
        return

    async def gen() -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(path.open, "rb")
        try:
            while data := await asyncio.to_thread(f.read, chunk):
                yield data
        finally:
            f.close()

    try:
        yield gen()
    except OSError as exc:
        raise SinkError(f"cannot read {key}: {exc.strerror or exc}") from None


async def delete_object(dest: S3Destination | DirectoryDestination, key: str, ssh: Ssh | None = None) -> None:
    """Remove one stored backup (retention); an absent one is already removed."""
    if isinstance(dest, S3Destination):
        client = s3_client(dest)
        try:
            await client.delete(key)
        except _s3_error() as exc:
            raise SinkError(str(exc)) from None
        finally:
            await client.close()
        return
    if dest.server_id == LOCAL:
        await asyncio.to_thread(Path(key).unlink, missing_ok=True)
        return
    sftp = await _sftp(ssh, dest.server_id)
    try:
        if await sftp.exists(key):
            await sftp.remove(key)
    except _sftp_errors() as exc:
        raise SinkError(f"cannot remove {key} on server {dest.server_id}: {exc}") from None
    finally:
        sftp.exit()
