"""A server's Traefik dynamic directory written over SFTP, with the same guarantees as the local one.

A file is written under a temporary name Traefik ignores (it does not end in ``.yml``) in the same
directory, then renamed into place with OpenSSH's atomic ``posix-rename``: Traefik on the server never
reads half a file. A delete renames the file away first, then removes it. Names are the route file names
of :mod:`berth_proxy_sync.adapters.files` (validated, never a path); the sentinel is never touched.
"""

from __future__ import annotations

import posixpath
import secrets
from typing import TYPE_CHECKING

from berth_proxy_sync.adapters.files import FILE_NAME_RE, TEMP_PREFIX, UnsafePathError
from berth_proxy_sync.domain.routes import SENTINEL_FILE

if TYPE_CHECKING:
    import asyncssh


class RemoteDynamicDir:
    def __init__(self, conn: asyncssh.SSHClientConnection, directory: str) -> None:
        if not posixpath.isabs(directory) or ".." in directory.split("/"):
            raise UnsafePathError(f"not an absolute directory: {directory!r}")
        self.conn = conn
        self.directory = directory

    def path(self, name: str, *, sentinel: bool = False) -> str:
        if not FILE_NAME_RE.fullmatch(name) or (name == SENTINEL_FILE and not sentinel):
            raise UnsafePathError(f"not a route file name: {name!r}")
        return posixpath.join(self.directory, name)

    def _temp(self, name: str, kind: str) -> str:
        return posixpath.join(self.directory, f"{TEMP_PREFIX}{name}.{kind}-{secrets.token_hex(6)}")

    async def ensure(self) -> None:
        async with self.conn.start_sftp_client() as sftp:
            await sftp.makedirs(self.directory, exist_ok=True)

    async def read(self, name: str) -> str | None:
        import asyncssh

        async with self.conn.start_sftp_client() as sftp:
            try:
                async with sftp.open(self.path(name, sentinel=True), "r") as fh:
                    return str(await fh.read())
            except asyncssh.SFTPNoSuchFile:
                return None

    async def write(self, name: str, content: str, *, sentinel: bool = False) -> bool:
        """Atomically replace ``name`` with ``content``; False (and no write) when it already has it."""
        target = self.path(name, sentinel=sentinel)
        if await self.read(name) == content:
            return False
        tmp = self._temp(name, "tmp")
        async with self.conn.start_sftp_client() as sftp:
            try:
                async with sftp.open(tmp, "w", attrs=_mode(0o644)) as fh:
                    await fh.write(content)
                    await fh.fsync()
                await sftp.posix_rename(tmp, target)
            except BaseException:
                await _remove_quietly(sftp, tmp)
                raise
        return True

    async def delete(self, name: str) -> bool:
        """Rename ``name`` away (one event for Traefik), then remove it; False when it was not there."""
        import asyncssh

        target, away = self.path(name), self._temp(name, "deleted")
        async with self.conn.start_sftp_client() as sftp:
            try:
                await sftp.posix_rename(target, away)
            except asyncssh.SFTPNoSuchFile:
                return False
            await sftp.remove(away)
        return True

    async def names(self) -> list[str]:
        """The route file names in the directory (temporary files and the sentinel left out)."""
        async with self.conn.start_sftp_client() as sftp:
            entries = await sftp.listdir(self.directory)
        return sorted(n for n in entries if FILE_NAME_RE.fullmatch(n) and n != SENTINEL_FILE)


def _mode(mode: int) -> asyncssh.SFTPAttrs:
    import asyncssh

    return asyncssh.SFTPAttrs(permissions=mode)


async def _remove_quietly(sftp: asyncssh.SFTPClient, path: str) -> None:
    import asyncssh

    try:
        await sftp.remove(path)
    except (asyncssh.SFTPError, OSError):
        pass
