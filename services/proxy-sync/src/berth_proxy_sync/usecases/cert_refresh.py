"""Uploaded certificates reach Traefik without a deployment (``evt.certificates.changed``).

The api sends, for an application whose uploaded certificates changed, the whole set for its hosts. Each
active route serving one of those hosts, on every server, is applied again as it stands (same hosts,
upstreams and generation) with its certificates replaced: through the route batcher like any
``cmd.route.apply`` (the certificate files written before the route file names them, the host states
recorded, Traefik confirmed live; the answer settles nothing new at the scheduler, whose op for that
generation is done). The command ids derive from the refresh's id, so a redelivered refresh changes
nothing twice. A refresh older than the newest one taken for the application is ignored
(``certificate_refreshes``), as is a route whose certificates already come from a newer one: a late
delivery never brings a deleted certificate back.
Then the files of certificates no route of the server names any more are deleted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus.consumer import Delivery
from berth_common.catalogue import ApplyRoutes, CertificatesChanged, TlsOptions
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import cert_repo, repo
from berth_proxy_sync.domain.routes import Route
from berth_proxy_sync.domain.tls import Refresh, caught_up
from berth_proxy_sync.usecases.routes import Routes

log = get_logger(__name__)


def refresh_of(msg: CertificatesChanged) -> Refresh:
    return Refresh(msg.revision, tuple(msg.hosts), tuple(msg.certificates))


def refreshed_command(server_id: str, route: Route, msg: CertificatesChanged) -> ApplyRoutes | None:
    """The route applied again with the refresh's certificates (None: it has them, or newer ones)."""
    tls = caught_up(route.tls, route.hosts, refresh_of(msg))
    if tls is None:
        return None
    return reapplied(server_id, route, tls, msg.team_id, msg.application_id)


def reapplied(
    server_id: str, route: Route, tls: TlsOptions, team_id: str | None, application_id: str | None
) -> ApplyRoutes:
    """The route applied again as it stands (same hosts, upstreams and generation) with ``tls``: the
    command as the scheduler would send it, handed to the route batcher, never published."""
    return ApplyRoutes.model_validate(
        {
            "route_id": route.route_id,
            "server_id": server_id,
            "hosts": list(route.hosts),
            "upstreams": list(route.upstreams),
            "generation": route.generation,
            "entry_point": route.entry_point,
            "tls": tls,
            "team_id": team_id,
            "application_id": application_id,
            "buffer_requests": route.buffering,
            "path_prefix": route.path,
        }
    )


@dataclass
class CertificateRefresh:
    routes: Routes
    sessionmaker: async_sessionmaker[AsyncSession]

    async def refresh(self, msg: CertificatesChanged, delivery: Delivery) -> None:
        async with self.sessionmaker() as session, session.begin():
            # the application's route batches in flight commit first: their routes are among those read
            # below; the later ones see this refresh (``usecases/cert_catchup.py``)
            await cert_repo.lock_refreshes(session, msg.application_id)
            if not await cert_repo.take_refresh(session, msg.application_id, refresh_of(msg)):
                log.info("older certificate refresh ignored", application_id=msg.application_id, revision=msg.revision)
                return
            serving = await repo.serving(session, msg.hosts)
        commands = [(server_id, refreshed_command(server_id, route, msg)) for server_id, route in serving]
        todo = [(server_id, cmd) for server_id, cmd in commands if cmd is not None]
        await asyncio.gather(*(self.routes.apply(cmd, _delivery(delivery, cmd)) for _, cmd in todo))
        for server_id in sorted({server_id for server_id, _ in serving}):
            await self.routes.prune_certificates(server_id)
        log.info(
            "uploaded certificates refreshed",
            application_id=msg.application_id,
            revision=msg.revision,
            routes=[f"{server_id}/{cmd.route_id}" for server_id, cmd in todo],
            certificates=[c.certificate_id for c in msg.certificates],
        )


def _delivery(refresh: Delivery, cmd: ApplyRoutes) -> Delivery:
    """The route command's delivery: recorded once per (refresh, server, route) by the batch."""
    envelope = Envelope(
        id=f"{refresh.envelope.id}-{cmd.server_id}-{cmd.route_id}"[:128],
        source="proxy-sync",
        type=ApplyRoutes.TYPE,
        data={},
    )
    return Delivery(envelope=envelope, headers={}, attempt=refresh.attempt, consumer=refresh.consumer)
