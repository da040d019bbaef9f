"""SSH to the servers Berth runs on: pinned host keys, pooled connections, forwarded Docker sockets.

A remote server's Docker Engine API is reached through its own unix socket forwarded over SSH (no docker
CLI on the control plane): :class:`SshPool` keeps one connection per server, reconnects with backoff, and
exposes the engine at a local socket path that the Docker connection factory connects its client to.

Host keys are pinned: the first contact (:func:`first_contact`) reads the server's key and its SHA-256
fingerprint for a person to compare; every later connection accepts that key only, and a changed key is
:class:`HostKeyChanged` until an admin accepts the new one.

Remote commands are argv lists turned into one command line by :func:`remote_command` (the SSH protocol
carries a string that the remote shell splits): every argument is quoted, and control characters are
refused, so nothing user-supplied is ever interpreted by the remote shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncssh

from berth_common.ssh_keys import fingerprint
from berth_common.values import SSH_USER_PATTERN

Unreachable = Literal["dns", "refused", "timeout", "network"]

_USER = re.compile(SSH_USER_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


ErrorKind = Literal["ssh", "unreachable", "authentication", "host_key_changed"]


class SshError(Exception):
    """A connection to a server failed; the message is for a person, ``kind`` for code."""

    kind: ErrorKind = "ssh"


class ServerUnreachable(SshError):
    """The server was not reached; ``how`` says why: its name does not resolve, it refused, it did not
    answer in time, or the network failed."""

    kind: ErrorKind = "unreachable"

    def __init__(self, how: Unreachable, detail: str) -> None:
        super().__init__(detail)
        self.how = how


class AuthenticationFailed(SshError):
    """The server refused the key for the user."""

    kind: ErrorKind = "authentication"


class HostKeyChanged(SshError):
    """The server showed a host key other than the pinned one, or none is pinned yet."""

    kind: ErrorKind = "host_key_changed"


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to connect. ``host_key`` is the pinned public key (OpenSSH line), None only at
    first contact. ``private_key`` is the opened (unsealed) PEM: it never leaves the process."""

    host: str
    port: int
    user: str
    private_key: str
    host_key: str | None = None

    def __post_init__(self) -> None:
        if not _USER.fullmatch(self.user):
            raise ValueError(f"not a user name: {self.user!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"not a port: {self.port}")

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"SshTarget({self.user}@{self.host}:{self.port})"


def remote_command(argv: Sequence[str]) -> str:
    """One command line for the remote shell from ``argv``: every argument quoted, control characters refused."""
    if not argv:
        raise ValueError("empty command")
    for arg in argv:
        if _CONTROL.search(arg):
            raise ValueError(f"control character in argument {arg!r}")
    return shlex.join(argv)


def _classify(exc: BaseException, target: SshTarget) -> SshError:
    where = f"{target.host}:{target.port}"
    if isinstance(exc, SshError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyChanged(
            f"the host key of {where} is not the one pinned for this server "
            f"({fingerprint(target.host_key) if target.host_key else 'none'}): if the server was reinstalled, "
            "an admin can accept the new key",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationFailed(f"{where} refused the key for user {target.user}: install the public key")
    if isinstance(exc, socket.gaierror):
        return ServerUnreachable("dns", f"the name {target.host} does not resolve ({exc.strerror})")
    if isinstance(exc, ConnectionRefusedError):
        return ServerUnreachable("refused", f"{where} refused the connection: is sshd running on that port?")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return ServerUnreachable("timeout", f"{where} did not answer in time")
    if isinstance(exc, OSError):
        return ServerUnreachable("network", f"{where} is not reachable: {exc.strerror or exc}")
    if isinstance(exc, asyncssh.Error):
        return SshError(f"SSH to {where} failed: {exc.reason}")
    return SshError(f"SSH to {where} failed: {exc}")


async def _open(target: SshTarget, timeout: float, **options: Any) -> asyncssh.SSHClientConnection:
    """A connection to ``target`` with its key only (no agent, no ``~/.ssh/config``); errors classified."""
    try:
        return await asyncssh.connect(
            target.host,
            target.port,
            username=target.user,
            client_keys=[asyncssh.import_private_key(target.private_key)],
            connect_timeout=timeout,
            agent_path=None,
            config=None,
            **options,
        )
    except Exception as exc:
        raise _classify(exc, target) from None


async def connect(target: SshTarget, *, timeout: float = 10.0) -> asyncssh.SSHClientConnection:
    """A connection that accepts only the pinned host key (none pinned: refused, use :func:`first_contact`)."""
    if target.host_key is None:
        raise HostKeyChanged(f"no host key is pinned for {target.host}: validate the server first")
    pinned = asyncssh.import_public_key(target.host_key)
    return await _open(target, timeout, known_hosts=([pinned], [], []), keepalive_interval=15, keepalive_count_max=3)


async def first_contact(target: SshTarget, *, timeout: float = 10.0) -> str:
    """Connect once accepting any host key and return it (an OpenSSH public key line) to be pinned.

    Authentication is still checked: a server that refuses the key raises :class:`AuthenticationFailed`."""
    conn = await _open(target, timeout, known_hosts=None)
    try:
        key = conn.get_server_host_key()
    finally:
        conn.close()
    if key is None:
        raise SshError(f"{target.host} sent no host key")
    return key.export_public_key("openssh").decode().strip()


@dataclass
class _Link:
    conn: asyncssh.SSHClientConnection
    listener: asyncssh.SSHListener | None = None


class SshPool:
    """One SSH connection per server (by id), reconnected when it dropped; forwarded Docker sockets.

    Local socket paths live in a private (0700) directory of this process, removed by :meth:`close`."""

    def __init__(self, socket_dir: Path | None = None, timeout: float = 10.0) -> None:
        self._dir = socket_dir or Path(tempfile.mkdtemp(prefix="berth-ssh-"))
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir.chmod(0o700)
        self._timeout = timeout
        self._links: dict[str, _Link] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, server_id: str) -> asyncio.Lock:
        return self._locks.setdefault(server_id, asyncio.Lock())

    async def connection(self, server_id: str, target: SshTarget) -> asyncssh.SSHClientConnection:
        async with self._lock(server_id):
            return (await self._link(server_id, target)).conn

    async def _link(self, server_id: str, target: SshTarget) -> _Link:
        link = self._links.get(server_id)
        if link is not None and not link.conn.is_closed():
            return link
        if link is not None:
            self._drop(server_id)
        link = _Link(await connect(target, timeout=self._timeout))
        self._links[server_id] = link
        return link

    async def docker_socket(self, server_id: str, target: SshTarget, remote: str = "/var/run/docker.sock") -> str:
        """A local unix socket path that reaches the server's Docker socket over SSH."""
        async with self._lock(server_id):
            link = await self._link(server_id, target)
            path = self._dir / f"{_safe(server_id)}.sock"
            if link.listener is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                try:
                    link.listener = await link.conn.forward_local_path(str(path), remote)
                except asyncssh.Error as exc:
                    raise SshError(f"{target.host} refused to forward its Docker socket: {exc.reason}") from None
            return str(path)

    async def run(
        self, server_id: str, target: SshTarget, argv: Sequence[str], timeout: float = 60.0
    ) -> tuple[int, str, str]:
        """Run ``argv`` on the server; returns (exit status, stdout, stderr), the status -1 when the server
        sent none. A connection found dropped when the command opens its channel is made again once."""
        line = remote_command(argv)
        for attempt in (1, 2):
            conn = await self.connection(server_id, target)
            try:
                result = await asyncio.wait_for(conn.run(line, check=False), timeout)
            except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost):
                if attempt == 2:
                    raise
                async with self._lock(server_id):
                    if self._links.get(server_id) is not None and self._links[server_id].conn is conn:
                        self._drop(server_id)
                continue
            # no exit status (the command was killed, or the channel closed before it ended): a failure
            status = -1 if result.exit_status is None else int(result.exit_status)
            return status, str(result.stdout or ""), str(result.stderr or "")
        raise AssertionError("unreachable")

    def _drop(self, server_id: str) -> None:
        link = self._links.pop(server_id, None)
        if link is None:
            return
        if link.listener is not None:
            link.listener.close()
        link.conn.close()

    def forget(self, server_id: str) -> None:
        """Close the server's connection (a key changed, the server was removed)."""
        self._drop(server_id)

    async def close(self) -> None:
        for server_id in list(self._links):
            self._drop(server_id)
        for entry in self._dir.glob("*.sock"):
            entry.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


def _safe(server_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", server_id):
        raise ValueError(f"not a server id: {server_id!r}")
    return server_id
