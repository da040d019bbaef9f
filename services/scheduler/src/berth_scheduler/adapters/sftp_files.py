"""Files in a directory on another server, for the backup worker process: an SSH connection of the
worker's own per server (the job's :class:`~berth_scheduler.domain.backup_jobs.SftpFile`: its key, and only
its pinned host key accepted), a ``.partial`` file written chunk by chunk or a stored object read to its
end over SFTP. So a backup to (or a restore from) such a directory streams in the worker like one to S3,
and the scheduler only makes the file, renames it and reads its size back on its own connection.

asyncssh is imported when a job names such a file, not before: most jobs write to S3 or the local disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from berth_scheduler.adapters.part_upload import PartError
from berth_scheduler.domain.backup_jobs import SftpFile

CLOSE_S = 10.0


class SftpError(Exception):
    """A server or a file of it cannot be used; the message names the server and the file, never a key."""


def _errors() -> tuple[type[BaseException], ...]:
    import asyncssh

    from berth_common.ssh import SshError

    return (OSError, asyncssh.Error, SshError, TimeoutError)


class Sessions:
    """One SSH connection and one SFTP client per server a job names, closed together."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._open: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    async def sftp(self, where: SftpFile) -> Any:
        key = (where.host, where.port, where.user)
        if key not in self._open:
            from berth_common.ssh import SshTarget, connect

            target = SshTarget(where.host, where.port, where.user, where.private_key, where.host_key or None)
            try:
                conn = await connect(target, timeout=self.timeout_s)
            except _errors() as exc:
                raise SftpError(f"no SSH connection to {where.host}:{where.port}: {exc}") from None
            try:
                client = await conn.start_sftp_client()
            except _errors() as exc:
                conn.close()
                raise SftpError(f"no SFTP session on {where.host}:{where.port}: {exc}") from None
            self._open[key] = (conn, client)
        return self._open[key][1]

    async def close(self) -> None:
        for conn, client in self._open.values():
            with contextlib.suppress(Exception):
                client.exit()
            conn.close()
        self._open.clear()


class RemoteFile:
    """A ``.partial`` file on another server the worker writes (the scheduler made it and renames it)."""

    def __init__(self, sessions: Sessions, where: SftpFile) -> None:
        self.sessions, self.where = sessions, where
        self._file: Any = None

    def _fail(self, exc: BaseException) -> PartError:
        detail = getattr(exc, "reason", "") or str(exc)
        name = self.where.path.removesuffix(".partial")
        return PartError(f"cannot write {name} on {self.where.host}: {detail}")

    async def open(self) -> None:
        try:
            sftp = await self.sessions.sftp(self.where)
            self._file = await sftp.open(self.where.path, "wb")
        except SftpError as exc:
            raise PartError(str(exc)) from None
        except _errors() as exc:
            raise self._fail(exc) from None

    async def write(self, data: bytes) -> None:
        try:
            await self._file.write(data)
        except _errors() as exc:
            raise self._fail(exc) from None

    async def sync(self) -> None:
        """Every byte on the server's disk (``fsync@openssh.com`` where the server has it), the file closed."""
        try:
            with contextlib.suppress(Exception):
                await self._file.fsync()
            await self._file.close()
            self._file = None
        except _errors() as exc:
            raise self._fail(exc) from None

    async def remove(self) -> None:
        """Best effort: the scheduler's abort removes it too."""
        with contextlib.suppress(Exception):
            if self._file is not None:
                await self._file.close()
            sftp = await self.sessions.sftp(self.where)
            await sftp.remove(self.where.path)


@contextlib.asynccontextmanager
async def read_remote(where: SftpFile, chunk: int = 1 << 20) -> AsyncIterator[AsyncIterator[bytes]]:
    """The stored object's bytes, read over SFTP on a connection of this process; SftpError when not."""
    sessions = Sessions()
    try:
        sftp = await sessions.sftp(where)
        try:
            f = await sftp.open(where.path, "rb")
        except _errors() as exc:
            raise SftpError(f"cannot read {where.path} on {where.host}: {exc}") from None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while data := await f.read(chunk):
                    yield data
            except _errors() as exc:
                raise SftpError(f"cannot read {where.path} on {where.host}: {exc}") from None

        try:
            yield chunks()
        finally:
            with contextlib.suppress(Exception):
                await f.close()
    finally:
        await sessions.close()
