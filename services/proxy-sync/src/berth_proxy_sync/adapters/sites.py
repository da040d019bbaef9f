"""Sites: a Traefik and the dynamic directory it watches, one per server.

The local site is the control plane's own Traefik (``DynamicDir`` + ``TraefikApi``). A remote site is a
server's Traefik container: its directory written over SFTP (``RemoteDynamicDir``), its API reached through
a port forwarded over the server's one SSH connection (on loopback of this process, to the container's API
entry point on the server's Berth network: the API is never published). Both offer the same ``files``
(async: write, delete, sync of several names) and ``traefik`` (``TraefikApi``), so a route change is carried out the same
way on either.

asyncssh and ``berth_common.traefik`` are loaded when the first remote site opens: a proxy-sync
that routes only locally never carries them.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from berth_common.logging import get_logger
from berth_proxy_sync.adapters.cert_files import CertFiles
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.traefik_api import TraefikApi
from berth_proxy_sync.domain.tls import TlsSite

if TYPE_CHECKING:
    import asyncssh

    from berth_common.docker import DockerEngines
    from berth_common.ssh import SshPool, SshTarget
    from berth_common.traefik import Acme
    from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
    from berth_proxy_sync.domain.proxy_handover import NotServing

log = get_logger(__name__)


class SiteFiles(Protocol):
    async def write(self, name: str, content: str, *, durable: bool = True) -> bool: ...

    async def delete(self, name: str, *, durable: bool = True) -> bool: ...

    async def sync(self, *names: str | None) -> None:
        """Flush each of ``names`` (those given and present) and the directory to disk."""


@dataclass
class LocalFiles:
    """The local dynamic directory; a write is a rename on a local disk, so it runs on the event loop, and
    the flush (``sync``) runs in a thread."""

    directory: DynamicDir

    async def write(self, name: str, content: str, *, durable: bool = True) -> bool:
        return self.directory.write(name, content, durable=durable)

    async def delete(self, name: str, *, durable: bool = True) -> bool:
        return self.directory.delete(name, durable=durable)

    async def sync(self, *names: str | None) -> None:
        await asyncio.to_thread(self.directory.sync, *names)


@dataclass
class RemoteFiles:
    """A server's dynamic directory over SFTP: every write is flushed on the server before its rename, so
    there is nothing left to ``sync``. SSH and SFTP errors are OSErrors, as a local disk's are."""

    directory: RemoteDynamicDir

    async def write(self, name: str, content: str, *, durable: bool = True) -> bool:
        import asyncssh

        try:
            return await self.directory.write(name, content)
        except asyncssh.Error as exc:
            raise OSError(f"writing {name} on the server failed: {exc.reason}") from exc

    async def delete(self, name: str, *, durable: bool = True) -> bool:
        import asyncssh

        try:
            return await self.directory.delete(name)
        except asyncssh.Error as exc:
            raise OSError(f"deleting {name} on the server failed: {exc.reason}") from exc

    async def sync(self, *names: str | None) -> None:
        return None


@dataclass
class Site:
    """One server's Traefik as proxy-sync writes and asks it."""

    server_id: str
    files: SiteFiles
    traefik: TraefikApi
    conn: asyncssh.SSHClientConnection | None = None  # a remote site's SSH connection
    listener: asyncssh.SSHListener | None = None
    remote: RemoteDynamicDir | None = None
    checked_at: float = field(default_factory=time.monotonic)  # when its API last answered
    # HTTPS: how the site's Traefik serves it (None: HTTP only), where uploaded certificates go, and where
    # the certificate of a host is looked at (address, HTTPS port)
    tls: TlsSite | None = None
    certs: CertFiles | None = None
    probe: tuple[str, int] | None = None
    # the end of a remote site's Traefik log (the CA's answers), read from its container (None: the local
    # one, whose log file the certificate watch reads itself)
    read_log: Callable[[], Awaitable[str]] | None = None

    @property
    def alive(self) -> bool:
        return self.conn is None or not self.conn.is_closed()

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        await self.traefik.close()


def local_site(
    files: DynamicDir,
    traefik: TraefikApi,
    *,
    tls: TlsSite | None = None,
    certs: CertFiles | None = None,
    probe: tuple[str, int] | None = None,
) -> Site:
    return Site("local", LocalFiles(files), traefik, tls=tls, certs=certs, probe=probe)


async def _server_log(engines: DockerEngines, server_id: str) -> str:
    from berth_proxy_sync.adapters.server_proxy import log_tail

    return await log_tail(engines.api(server_id))


@dataclass
class RemoteSites:
    """Opens remote sites: one SSH connection per server (``SshPool``), the server's engine through the
    Docker connection factory, its Traefik ensured, its API forwarded and answering."""

    root: str  # the folder on each server under which its Traefik's files live (one folder per server id)
    api_password: str  # of every server's Traefik API (the sentinel's API router)
    web_port: int = 80
    image: str | None = None
    binary: Path | None = None
    poll_interval_s: float = 0.01
    connect_timeout_s: float = 10.0
    api_timeout_s: float = 30.0
    websecure_port: int | None = None  # a server's HTTPS port, published from the start (None: HTTP only)
    https: bool = True  # whether Traefik serves HTTPS on ``websecure_port`` (turning it on: no gap)
    acme: Acme | None = None  # its ACME configuration (storage and CA bundle as the container sees them)
    _pool: SshPool | None = field(default=None, init=False)
    _engines: DockerEngines | None = field(default=None, init=False)

    def _clients(self) -> tuple[SshPool, DockerEngines]:
        if self._pool is None or self._engines is None:
            from berth_common.docker import DockerEngines, local_engine
            from berth_common.ssh import SshPool

            self._pool = SshPool(timeout=self.connect_timeout_s)
            self._engines = DockerEngines(local_engine(None))
        return self._pool, self._engines

    async def open(self, server_id: str, target: SshTarget) -> Site:
        """The server's site, its Traefik set up when needed and its API answering (SshError,
        DockerUnavailable, ServerProxyError otherwise)."""
        from berth_common import traefik as tr
        from berth_common.docker.remote import connect_server
        from berth_proxy_sync.adapters import server_proxy

        pool, engines = self._clients()
        await connect_server(engines, pool, server_id, target)
        conn = await pool.connection(server_id, target)
        api_address, remote = await server_proxy.ensure(
            engines.api(server_id),
            conn,
            root=self.root,
            server_id=server_id,
            image=self.image or tr.default_image(),
            binary=self.binary or tr.default_binary(),
            web_port=self.web_port,
            api_password=self.api_password,
            websecure_port=self.websecure_port,
            https=self.https,
            acme=self.acme,
        )
        listener = await conn.forward_local_port("127.0.0.1", 0, api_address, tr.API_PORT)
        traefik = TraefikApi(
            f"http://127.0.0.1:{listener.get_port()}", password=self.api_password, poll_interval_s=self.poll_interval_s
        )
        site = Site(server_id, RemoteFiles(remote), traefik, conn, listener, remote)
        if self.https and self.websecure_port is not None:
            from berth_proxy_sync.adapters.cert_files import RemoteCertFiles
            from berth_proxy_sync.domain.server_proxy import server_dir

            dns01 = bool(self.acme and self.acme.dns_provider)
            site.tls = TlsSite(certs_dir=tr.CERTS_DIR, https_port=self.websecure_port, dns_resolver=dns01)
            site.certs = RemoteCertFiles(conn, server_dir(self.root, server_id) + "/certs")
            site.probe = (target.host, self.websecure_port)
            site.read_log = functools.partial(_server_log, engines, server_id)
        deadline = time.monotonic() + self.api_timeout_s
        while not await traefik.ping():
            if time.monotonic() > deadline:
                await site.close()
                from berth_proxy_sync.domain.server_proxy import ServerProxyError

                raise ServerProxyError(
                    f"the Traefik of server {server_id} did not answer within {self.api_timeout_s:g}s"
                )
            await asyncio.sleep(0.1)
        log.info("server site open", server_id=server_id, traefik_api=api_address)
        return site

    async def serving(self, site: Site) -> NotServing | None:
        """What keeps the site's server from serving its web port as Berth made it, or None
        (``server_proxy.serving``: two container inspections and one request over the SSH connection)."""
        from berth_proxy_sync.adapters import server_proxy

        if site.conn is None or self._engines is None:
            return None
        client = self._engines.api(site.server_id)
        return await server_proxy.serving(client, site.conn, self.web_port, self.websecure_port)

    async def repair(self, site: Site, problem: NotServing) -> None:
        """Remove the containers ``problem`` names; opening the site again makes them (``server_proxy.ensure``)."""
        from berth_proxy_sync.adapters import server_proxy

        _, engines = self._clients()
        await server_proxy.remove(engines.api(site.server_id), problem)

    async def forget(self, server_id: str) -> None:
        """Close what was opened for the server (removed, its key or address changed)."""
        if self._pool is not None:
            self._pool.forget(server_id)
        if self._engines is not None:
            await self._engines.close(server_id)

    async def close(self) -> None:
        if self._engines is not None:
            await self._engines.close()
        if self._pool is not None:
            await self._pool.close()
