"""Sites: which Traefik a route command goes to, and the server directory that says how to reach it.

Carries out ``evt.server.changed``: proxy-sync keeps the directory of servers (``berth_common.fleet``); a
removed server's routes are forgotten (its hosts freed) and its connection closed; a server whose address
or key changed is connected to afresh on its next use.

A route command names its server: ``local`` is the control plane's own Traefik; any other server's site is
opened on first use (SSH connection, its Traefik container ensured, its API forwarded over SSH) and kept.
The first time a server's site is used after start (or after its address changed) its files are
reconciled from the database, as the local ones are at start: the sentinel, every active route's file,
managed files of routes that are gone deleted. So is a server whose file a route batch could not put back
(:meth:`Sites.stale`: the write of a change Traefik did not confirm succeeded, the write that would undo it
failed, and the file differs from the database until reconciled), at its next use or keep-up, whichever
comes first, never while a batch of that server runs (:meth:`Sites.writing`). The keep-up
(:meth:`Sites.keep_up`) opens, after a start, the site of every server with an active route, so that a
server whose engine restarts is served again without waiting for its next route change. A server unknown
here, removed, not usable yet, or not reachable is :class:`SiteUnavailable`, which the route command
answers with ``evt.route.failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common import fleet
from berth_common.catalogue import ServerChanged
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import cert_repo, default_cert, repo, tables
from berth_proxy_sync.adapters.sites import RemoteSites, Site
from berth_proxy_sync.domain import certificate
from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE, render, render_sentinel
from berth_proxy_sync.usecases.https import sync_certificates

if TYPE_CHECKING:
    from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir

log = get_logger(__name__)
RECHECK_S = 5.0  # a site's API answered within this long: used without asking again
CONFIRM_S = 1.0  # a server's web port found not served is looked at again after this long before it is repaired
RETRY_S = 5.0  # a server whose site could not be opened is not tried again for this long (same answer)


class SiteUnavailable(Exception):
    """No route change can be made on this server now; the message says why, for a person."""


@dataclass
class Sites:
    local: Site
    remote: RemoteSites
    setup_timeout_s: float = 300.0
    _open: dict[str, Site] = field(default_factory=dict)
    _reconciled: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # server -> address reconciled at
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _failed: dict[str, tuple[float, str]] = field(default_factory=dict)  # server -> (when, why) it last failed
    _stale: set[str] = field(default_factory=set)  # servers whose files may differ from the database
    _writing: dict[str, asyncio.Lock] = field(default_factory=dict)  # held by a batch of the server
    _watch: asyncio.Task[None] | None = field(default=None, init=False)

    async def site(self, server_id: str, session: AsyncSession) -> Site:
        """The site of ``server_id``, opened (and reconciled) on first use; SiteUnavailable when none."""
        if server_id == fleet.LOCAL:
            return self.local
        record = await fleet.server_of(session, tables.servers, server_id)
        if record is None:
            raise SiteUnavailable(f"server {server_id} is not known to proxy-sync (no evt.server.changed named it)")
        try:
            target = fleet.target_of(record)
        except fleet.ServerNotUsable as exc:
            raise SiteUnavailable(str(exc)) from None
        address = (record.host, record.port, record.user)
        async with self._locks.setdefault(server_id, asyncio.Lock()):
            site = self._open.get(server_id)
            if site is not None and site.alive and await _answers(site) and await self._settled(site, session):
                return site
            if site is not None:
                self._open.pop(server_id, None)
                await site.close()
            failed = self._failed.get(server_id)
            if failed is not None and time.monotonic() - failed[0] < RETRY_S:
                raise SiteUnavailable(failed[1])  # commands queued behind a failed attempt do not each wait
            site = None
            try:
                async with asyncio.timeout(self.setup_timeout_s):
                    site = await self.remote.open(server_id, target)
                    if self._reconciled.get(server_id) != address or server_id in self._stale:
                        await reconcile_remote(site, session)
                        self._reconciled[server_id] = address
                        self._stale.discard(server_id)
            except Exception as exc:
                if site is not None:
                    await site.close()
                reason = _reason(record.name, server_id, exc)
                self._failed[server_id] = (time.monotonic(), reason)
                raise SiteUnavailable(reason) from None
            self._failed.pop(server_id, None)
            self._open[server_id] = site
            return site

    def stale(self, server_id: str) -> None:
        """A route file of ``server_id`` may differ from the database (a batch could not put it back): its
        files are reconciled at the site's next use or keep-up pass."""
        if server_id != fleet.LOCAL:
            self._stale.add(server_id)

    def writing(self, server_id: str) -> asyncio.Lock:
        """The lock a route batch of ``server_id`` holds while it writes, confirms and records: a reconcile
        by the keep-up reads the database between two batches, never one's change written but not recorded."""
        return self._writing.setdefault(server_id, asyncio.Lock())

    async def _settled(self, site: Site, session: AsyncSession) -> bool:
        """The open site's files reconciled when marked stale; False when that failed (the site is then opened
        again, and reconciled as it opens)."""
        if site.server_id not in self._stale:
            return True
        try:
            await reconcile_remote(site, session)
        except Exception as exc:
            log.warning("a server's route files not reconciled", server_id=site.server_id, error=str(exc))
            return False
        self._stale.discard(site.server_id)
        return True

    async def changed(self, msg: ServerChanged, unit: Unit) -> None:
        """Keep the directory; forget a removed server's routes; reconnect a changed one on next use."""
        if not await fleet.record_change(unit.session, tables.servers, msg):
            return
        if msg.state == "removed":
            forgotten = await repo.forget_server(unit.session, msg.server_id)
            log.info("server removed: its routes are forgotten", server_id=msg.server_id, routes=forgotten)
        await self.forget(msg.server_id, removed=msg.state == "removed")
        log.info("server directory updated", server_id=msg.server_id, state=msg.state, revision=msg.revision)

    async def forget(self, server_id: str, *, removed: bool = False) -> None:
        """Close the server's site; the next use opens it again (and reconciles it when its address changed
        or it was removed)."""
        async with self._locks.setdefault(server_id, asyncio.Lock()):
            site = self._open.pop(server_id, None)
            self._failed.pop(server_id, None)
            if removed:
                self._reconciled.pop(server_id, None)
                self._stale.discard(server_id)
            if site is not None:
                await site.close()
            await self.remote.forget(server_id)

    async def keep_up(self, sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
        """Every server whose site was opened (and not removed since), and every server with an active route,
        checked again: a site whose Traefik does not answer is opened again, which starts its container again
        (an engine restart leaves it stopped, and its routes' applications dark until the next route change).
        So is one whose API answers but whose web port is not served as Berth made it (:meth:`_serves`): what
        is wrong is removed first, and made again as the site opens. A server with routes that this process
        has not opened yet (proxy-sync restarted, and no route of it changed since) is opened and reconciled
        as its next route command would: its Traefik is kept up from the first pass after a start, not from
        its next deploy. The servers opened again."""
        async with sessionmaker() as session:
            routed = await repo.servers_with_routes(session)
        reopened = []
        for server_id in sorted({*self._reconciled, *routed, *self._stale}):
            site = self._open.get(server_id)
            fine = server_id not in self._stale
            if fine and site is not None and site.alive and await _answers(site) and await self._serves(site):
                continue
            if self.writing(server_id).locked():
                continue  # a batch of the server runs: it takes (and reconciles) the site itself
            try:
                async with self.writing(server_id), sessionmaker() as session:
                    await self.site(server_id, session)
            except SiteUnavailable as exc:
                log.info("a server's site is not open yet", server_id=server_id, reason=str(exc))
                continue
            reopened.append(server_id)
            log.warning("a server's site was opened again", server_id=server_id)
        return reopened

    async def _serves(self, site: Site) -> bool:
        """Whether the site's server serves its web port (``RemoteSites.serving``); when not, seen again after
        ``CONFIRM_S`` with its API answering (a moment's state, or an SSH connection that failed, repairs
        nothing), what is wrong is removed and the site closed (:meth:`keep_up` opens it again). Checked under
        the server's lock: a route command's setup or replacement of its Traefik is never taken for a fault."""
        async with self._locks.setdefault(site.server_id, asyncio.Lock()):
            if self._open.get(site.server_id) is not site:
                return True  # opened again meanwhile
            try:
                problem = await self.remote.serving(site)
                if problem is None:
                    return True
                log.info("a server's web port seems not served", server_id=site.server_id, why=problem.why)
                await asyncio.sleep(CONFIRM_S)
                if site.alive and await site.traefik.ping():  # else its API is silent now: opened again
                    problem = await self.remote.serving(site)
                    if problem is None:
                        return True
                    await self.remote.repair(site, problem)
                    log.warning(
                        "a server's web port is not served: its Traefik is made again",
                        server_id=site.server_id,
                        why=problem.why,
                    )
            except Exception as exc:  # the engine or the connection failed: the next pass looks again
                log.warning("a server's web port not checked", server_id=site.server_id, error=str(exc))
                return True
            self._open.pop(site.server_id, None)
            await site.close()
            return False

    def start_watch(self, sessionmaker: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        """:meth:`keep_up` every ``interval_s`` until :meth:`close`."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.keep_up(sessionmaker)
                except Exception as exc:  # the database went away: the next pass tries again
                    log.warning("server sites not checked", error=str(exc))

        self._watch = asyncio.create_task(loop(), name="server-sites-watch")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for site in list(self._open.values()):
            await site.close()
        self._open.clear()
        await self.remote.close()
        await self.local.close()


async def _answers(site: Site) -> bool:
    """Whether the server's Traefik API answered within ``RECHECK_S`` or answers now: a Traefik container
    that was restarted may have another address, and its site is then opened again."""
    now = time.monotonic()
    if now - site.checked_at < RECHECK_S:
        return True
    if await site.traefik.ping():
        site.checked_at = now
        return True
    log.warning("a server's Traefik API does not answer: opening its site again", server_id=site.server_id)
    return False


def _reason(name: str, server_id: str, exc: BaseException) -> str:
    from berth_common.docker import DockerUnavailable
    from berth_common.ssh import SshError

    if isinstance(exc, TimeoutError):
        return f"server {name} ({server_id}): its Traefik was not set up in time"
    if isinstance(exc, SshError):
        return f"server {name} ({server_id}) is not reachable: {exc}"
    if isinstance(exc, DockerUnavailable):
        return f"server {name} ({server_id}): its Docker engine did not answer: {exc}"
    return f"server {name} ({server_id}): its Traefik could not be set up: {type(exc).__name__}: {exc}"


async def reconcile_remote(site: Site, session: AsyncSession) -> dict[str, int]:
    """A server's files as the database says (see the module's docstring); the sentinel goes first."""
    files = site.remote
    assert files is not None
    sentinel_written = await files.write(SENTINEL_FILE, render_sentinel(site.traefik.password), sentinel=True)
    text = await default_cert.areplacement(await files.read(certificate.DEFAULT_CERT_FILE))
    if text is not None:
        await files.write(certificate.DEFAULT_CERT_FILE, text)
    active = await repo.active_routes(session, site.server_id)
    states = await cert_repo.host_states(session, site.server_id, [r.route_id for r in active if r.tls])
    if site.tls is not None:  # the uploaded certificates first: the route files name them
        await sync_certificates(site.certs, active)
    wanted = {r.file_name for r in active}
    deleted = 0
    for name in await files.names():
        if name not in wanted and await _managed(files, name):
            deleted += await files.delete(name)
    written = 0
    for route in active:
        written += await files.write(route.file_name, render(route, site.tls, states.get(route.route_id)))
    counts = {"routes": len(active), "written": written, "deleted": deleted, "sentinel_written": int(sentinel_written)}
    log.info("server route files reconciled", server_id=site.server_id, **counts)
    return counts


async def _managed(files: RemoteDynamicDir, name: str) -> bool:
    text = await files.read(name)
    return text is not None and text.startswith(MANAGED_MARKER)
