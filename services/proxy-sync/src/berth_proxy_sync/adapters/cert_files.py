"""Uploaded certificates written where a site's Traefik reads them: ``<name>.crt`` (the chain, 0644) and
``<name>.key`` (the key, 0600) in a folder only proxy-sync writes (0700).

Names come from ``domain/tls.certificate_file`` (derived from the certificate's id: never a path). Each file
is written under a temporary name and renamed into place, so Traefik never reads half a key. The key's text
is passed in at the point of use only and never logged.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncssh

NAME_RE = re.compile(r"^cert-[0-9a-f]{32}\.(crt|key)$")


class CertFiles(Protocol):
    async def write(self, name: str, content: str) -> bool: ...

    async def names(self) -> list[str]: ...

    async def delete(self, name: str) -> bool: ...


def _mode(name: str) -> int:
    return 0o600 if name.endswith(".key") else 0o644


def _check(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"not a certificate file name: {name!r}")
    return name


class LocalCertFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _ensure(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        return self.directory

    async def write(self, name: str, content: str) -> bool:
        target = self._ensure() / _check(name)
        with contextlib.suppress(FileNotFoundError):
            if target.read_text() == content and (target.stat().st_mode & 0o777) == _mode(name):
                return False
        tmp = self.directory / f".{name}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode(name))
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    async def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if NAME_RE.fullmatch(p.name))

    async def delete(self, name: str) -> bool:
        try:
            (self.directory / _check(name)).unlink()
        except FileNotFoundError:
            return False
        return True


class RemoteCertFiles:
    """A server's certificate folder over SFTP (the same rules)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, directory: str) -> None:
        self.conn = conn
        self.directory = directory

    async def write(self, name: str, content: str) -> bool:
        async with self.conn.start_sftp_client() as sftp:
            await sftp.makedirs(self.directory, exist_ok=True)
            await sftp.chmod(self.directory, 0o700)
            return await sftp_replace(sftp, posixpath.join(self.directory, _check(name)), content, _mode(name))

    async def names(self) -> list[str]:
        import asyncssh

        async with self.conn.start_sftp_client() as sftp:
            try:
                return sorted(n for n in await sftp.listdir(self.directory) if NAME_RE.fullmatch(n))
            except asyncssh.SFTPNoSuchFile:
                return []

    async def delete(self, name: str) -> bool:
        import asyncssh

        async with self.conn.start_sftp_client() as sftp:
            try:
                await sftp.remove(posixpath.join(self.directory, _check(name)))
            except asyncssh.SFTPNoSuchFile:
                return False
        return True


async def sftp_replace(sftp: asyncssh.SFTPClient, target: str, content: str, mode: int) -> bool:
    """Make the server's file ``target`` hold ``content`` with ``mode`` (a temporary file in its folder,
    flushed, renamed into place); False when it already does."""
    import asyncssh

    try:
        async with sftp.open(target, "r") as fh:
            if str(await fh.read()) == content:
                return False
    except asyncssh.SFTPNoSuchFile:
        pass
    folder, name = posixpath.split(target)
    tmp = posixpath.join(folder, f".{name}.{secrets.token_hex(6)}")
    async with sftp.open(tmp, "w", attrs=asyncssh.SFTPAttrs(permissions=mode)) as fh:
        await fh.write(content)
        await fh.fsync()
    await sftp.posix_rename(tmp, target)
    return True
