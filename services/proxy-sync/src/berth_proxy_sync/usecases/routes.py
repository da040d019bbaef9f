"""Routes: Traefik's dynamic directory kept as the database says, one route change at a time per route.

Carries out ``cmd.route.apply`` and ``cmd.route.remove``, answered with ``evt.route.applied``,
``evt.route.removed`` or ``evt.route.failed``. Each runs inside ``berth_common.db.consume_once`` (message
id + state change in one transaction) and holds a per-route
advisory lock (and one per host it claims), so commands for one route apply one at a time while commands
for different routes run concurrently. A change is written to the route's file (flushed to disk while
Traefik picks it up), confirmed through Traefik's API, and only then persisted and answered with
``evt.route.applied`` / ``evt.route.removed``. When Traefik does not confirm before the deadline the previous file is put back,
the database keeps the previous state and ``evt.route.failed`` says why. A route is (server_id, route_id):
the command goes to its server's site (``usecases/sites.py``: the local Traefik or a server's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.catalogue import ApplyRoutes, RemoveRoute, RouteFailed, RouteRemoved, RoutesApplied
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import repo
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.adapters.traefik_api import NotLiveError
from berth_proxy_sync.domain import certificate
from berth_proxy_sync.domain.routes import Route, RouteError, check_route_id, file_name, render, render_sentinel
from berth_proxy_sync.usecases.sites import Sites, SiteUnavailable

log = get_logger(__name__)
Operation = Literal["apply", "remove"]


@dataclass
class Routes:
    sites: Sites
    live_timeout_s: float = 10.0

    async def _fail(
        self, unit: Unit, route_id: str, generation: int, operation: Operation, reason: str, server_id: str = "local"
    ) -> None:
        log.warning(
            "route change failed",
            route_id=route_id,
            server_id=server_id,
            generation=generation,
            op=operation,
            reason=reason,
        )
        await unit.emit(
            RouteFailed(
                route_id=route_id, server_id=server_id, generation=generation, operation=operation, reason=reason[:4000]
            )
        )

    async def _site(self, unit: Unit, msg: ApplyRoutes | RemoveRoute, operation: Operation) -> Site | None:
        """The site of the command's server; None (answered with evt.route.failed) when it has none now."""
        try:
            return await self.sites.site(msg.server_id, unit.session)
        except SiteUnavailable as exc:
            await self._fail(unit, msg.route_id, msg.generation, operation, str(exc), msg.server_id)
            return None

    async def _restore(self, site: Site, route_id: str, previous: Route | None) -> None:
        """Put the file back as the database has it (the last confirmed state)."""
        try:
            if previous is None:
                await site.files.delete(file_name(route_id))
            else:
                await site.files.write(previous.file_name, render(previous))
        except OSError as exc:  # the next start (a server's: its next use) re-derives every file from the database
            log.error("could not restore route file", route_id=route_id, error=str(exc))

    async def _confirmed(self, site: Site, confirm: Awaitable[float], name: str | None) -> float:
        """Wait for Traefik's confirmation while the change is flushed to disk (fsync of the file and the
        directory, off the event loop): the file is renamed into place first, Traefik reads it from the page
        cache at once, and neither waits for the other. Both must succeed before the change is recorded."""
        flushed = asyncio.create_task(site.files.sync(name))
        try:
            seconds = await confirm
        finally:
            await asyncio.wait({flushed})  # never left running behind a failed confirmation
        flushed.result()  # a flush error fails the change like a write error
        return seconds

    async def apply(self, msg: ApplyRoutes, unit: Unit) -> None:
        try:
            route = Route.create(msg.route_id, msg.hosts, msg.upstreams, msg.entry_point, msg.generation)
        except RouteError as exc:
            await self._fail(unit, msg.route_id, msg.generation, "apply", str(exc), msg.server_id)
            return
        session, server_id = unit.session, msg.server_id
        if (site := await self._site(unit, msg, "apply")) is None:
            return
        await repo.lock(session, route.route_id, route.hosts, server_id)
        stored = await repo.load(session, route.route_id, server_id)
        if stored is not None and route.generation < stored.generation:
            reason = f"stale: generation {route.generation} is older than the route's {stored.generation}"
            await self._fail(unit, route.route_id, route.generation, "apply", reason, server_id)
            return
        owners = await repo.host_owners(session, route.hosts, route.route_id)
        if owners:
            taken = ", ".join(f"{h} (route {r})" for h, r in sorted(owners.items()))
            await self._fail(
                unit, route.route_id, route.generation, "apply", f"hosts already routed: {taken}", server_id
            )
            return
        previous = stored.active if stored else None
        try:
            await site.files.write(route.file_name, render(route), durable=False)
            live_s = await self._confirmed(site, site.traefik.wait_live(route, self.live_timeout_s), route.file_name)
        except (NotLiveError, OSError) as exc:
            await self._restore(site, route.route_id, previous)
            await self._fail(unit, route.route_id, route.generation, "apply", str(exc), server_id)
            return
        live_ms = round(live_s * 1000, 1)
        await repo.save(session, route, live_ms, server_id)
        log.info(
            "route live", route_id=route.route_id, server_id=server_id, generation=route.generation, live_ms=live_ms
        )
        await unit.emit(
            RoutesApplied(
                route_id=route.route_id,
                server_id=server_id,
                generation=route.generation,
                hosts=list(route.hosts),
                upstreams=list(route.upstreams),
                live=True,
                live_ms=live_ms,
            )
        )

    async def remove(self, msg: RemoveRoute, unit: Unit) -> None:
        try:
            route_id = check_route_id(msg.route_id)
        except RouteError as exc:
            await self._fail(unit, msg.route_id, msg.generation, "remove", str(exc), msg.server_id)
            return
        session, server_id = unit.session, msg.server_id
        if (site := await self._site(unit, msg, "remove")) is None:
            return
        await repo.lock(session, route_id, (), server_id)
        stored = await repo.load(session, route_id, server_id)
        if stored is not None and msg.generation < stored.generation:
            reason = f"stale: generation {msg.generation} is older than the route's {stored.generation}"
            await self._fail(unit, route_id, msg.generation, "remove", reason, server_id)
            return
        previous = stored.active if stored else None
        try:
            await site.files.delete(file_name(route_id), durable=False)
            gone_s = await self._confirmed(site, site.traefik.wait_gone(route_id, self.live_timeout_s), None)
        except (NotLiveError, OSError) as exc:
            await self._restore(site, route_id, previous)
            await self._fail(unit, route_id, msg.generation, "remove", str(exc), server_id)
            return
        live_ms = round(gone_s * 1000, 1)
        await repo.mark_removed(session, route_id, msg.generation, previous, server_id)
        log.info("route removed", route_id=route_id, server_id=server_id, generation=msg.generation, live_ms=live_ms)
        await unit.emit(
            RouteRemoved(route_id=route_id, server_id=server_id, generation=msg.generation, live_ms=live_ms)
        )


def ensure_default_certificate(files: DynamicDir, wanted: bool = True) -> bool:
    """Write Traefik's default certificate unless a good one of ours is there (or remove ours when not
    ``wanted``: an operator's own default certificate); True when the file changed."""
    if not wanted:
        return certificate.is_ours(files.read(certificate.DEFAULT_CERT_FILE)) and files.delete(
            certificate.DEFAULT_CERT_FILE
        )
    if certificate.still_good(files.read(certificate.DEFAULT_CERT_FILE)):
        return False
    return files.write(certificate.DEFAULT_CERT_FILE, certificate.render_certificate(*certificate.self_signed()))


async def reconcile(
    files: DynamicDir, sessionmaker: async_sessionmaker[AsyncSession], *, default_certificate: bool = True
) -> dict[str, int]:
    """At start: write the sentinel, then every persisted route's file; delete managed files of routes that
    are gone.

    The files are derived state; the database is the truth. The sentinel goes first: it keeps Traefik's
    configuration non-empty once the last route file is deleted (Traefik ignores an empty configuration
    and would keep serving the deleted routes). Files without the managed marker (an operator's own
    configuration) are left alone. Traefik's default certificate is written when missing
    (``domain/certificate.py``: without it every reload costs Traefik a new RSA key).
    """
    files.ensure()
    cleaned = files.clean_temp_files()
    sentinel_written = files.write_sentinel(render_sentinel())
    cert_written = ensure_default_certificate(files, default_certificate)
    async with sessionmaker() as session:
        active = await repo.active_routes(session)
    # Stale files go first: Traefik re-reads the whole directory on each change, so once the last route
    # written is live, none of the deleted ones is served any more.
    wanted = {r.file_name for r in active}
    deleted = sum(files.delete(name) for name in files.managed_files() if name not in wanted)
    written = sum(files.write(r.file_name, render(r)) for r in active)
    counts = {
        "routes": len(active),
        "written": written,
        "deleted": deleted,
        "temp_cleaned": cleaned,
        "sentinel_written": int(sentinel_written),
        "certificate_written": int(cert_written),
    }
    log.info("route files reconciled", **counts)
    return counts
