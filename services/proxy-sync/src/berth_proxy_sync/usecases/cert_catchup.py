"""A route command built before its application's newest certificate refresh serves that refresh's
certificates, not the older set it carries.

The scheduler builds route commands from a deployment's spec, which learns of an upload or a deletion only
when the scheduler handles its ``evt.certificates.changed``; a command built in between carries the older
set. proxy-sync keeps each application's newest refresh (``certificate_refreshes``: revision, hosts,
certificates) and catches such a command up twice:

- when a command with ACME is taken (``at_intake``), before the DNS check, so hosts a deleted certificate
  leaves to ACME are looked up like any other (without ACME nothing is looked up: the batch suffices);
- in its batch's transaction (``in_batch``), for a refresh taken after its intake: the batch holds the
  application's refresh lock shared (``cert_repo.REFRESH_LOCK``, tried with its other locks) and a refresh
  takes it exclusively before it records itself and reads the routes it applies again. So either the
  batch sees the refresh, or the refresh waits for the batch and then sees its route. A host left to ACME
  there has had no DNS check yet: it waits for the certificate watch's next look-up before the resolver
  gets it.
Ended uploads are left out after the catch-up (``served.without_ended``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.catalogue import ApplyRoutes
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import cert_repo
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.routes import Route
from berth_proxy_sync.domain.tls import caught_up
from berth_proxy_sync.usecases.route_command import Command

log = get_logger(__name__)


async def at_intake(sessionmaker: async_sessionmaker[AsyncSession], msg: ApplyRoutes) -> ApplyRoutes:
    """``msg`` with its application's newest refresh's certificates when it predates it and has ACME,
    without ended uploads."""
    tls = msg.tls
    if msg.application_id is not None and tls is not None and tls.acme:
        async with sessionmaker() as session:
            refresh = (await cert_repo.newest_refreshes(session, [msg.application_id])).get(msg.application_id)
        if refresh is not None and (newer := caught_up(tls, [h.lower() for h in msg.hosts], refresh)) is not None:
            log.info(
                "route command caught up with a certificate refresh", route_id=msg.route_id, revision=refresh.revision
            )
            tls = newer
    if tls is not None:
        tls = served.without_ended(tls, dt.datetime.now(dt.UTC))
    return msg if tls is msg.tls else msg.model_copy(update={"tls": tls})


def refresh_locks(commands: Sequence[Command]) -> list[list[tuple[str, bool]]]:
    """For each command, the refresh lock of its application (shared), or none."""
    return [
        [(cert_repo.REFRESH_LOCK.format(app), True)] if (app := _application(cmd)) is not None else []
        for cmd in commands
    ]


async def in_batch(session: AsyncSession, commands: Sequence[Command]) -> None:
    """Catch up the commands (their refresh locks held) with a refresh taken since their intake."""
    refreshes = await cert_repo.newest_refreshes(session, [a for c in commands if (a := _application(c))])
    now = dt.datetime.now(dt.UTC)
    for cmd in commands:
        app, route = _application(cmd), cmd.route
        refresh = refreshes.get(app) if app is not None else None
        if refresh is None or route is None or not isinstance(cmd.msg, ApplyRoutes):
            continue
        tls = caught_up(route.tls, route.hosts, refresh)
        if tls is None:
            continue
        tls = served.without_ended(tls, now)
        log.info("route command caught up in its batch", route_id=route.route_id, revision=refresh.revision)
        cmd.msg = cmd.msg.model_copy(update={"tls": tls})
        cmd.route = Route.create(
            route.route_id,
            route.hosts,
            route.upstreams,
            route.entry_point,
            route.generation,
            tls,
            route.buffering,
            route.path,
        )


def _application(cmd: Command) -> str | None:
    return cmd.msg.application_id if isinstance(cmd.msg, ApplyRoutes) and cmd.valid else None
