"""The certificate state of each HTTPS host of a server (``certificates``): DNS check, the certificate
last seen served, and which events were sent about it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue.tls import CustomCertificate
from berth_proxy_sync.adapters.tables import certificate_refreshes, certificates, routes
from berth_proxy_sync.domain.tls import HostStates, Refresh


async def host_states(session: AsyncSession, server_id: str, route_ids: Sequence[str]) -> dict[str, HostStates]:
    """``{route_id: states}``: hosts cleared for ACME, hosts served with a valid certificate now. A host's
    row is one route's, but every route serving the host has its state (routes of one host by path)."""
    if not route_ids:
        return {}
    stored = await session.execute(
        sa.select(routes.c.route_id, routes.c.hosts).where(
            routes.c.server_id == server_id, routes.c.route_id.in_(route_ids), routes.c.removed.is_(False)
        )
    )
    serving: dict[str, set[str]] = {}
    for r in stored:
        for host in r.hosts or ():
            serving.setdefault(str(host), set()).add(str(r.route_id))
    where: sa.ColumnElement[bool] = certificates.c.route_id.in_(route_ids)
    if serving:
        where = sa.or_(where, certificates.c.host.in_(sorted(serving)))
    rows = await session.execute(sa.select(certificates).where(certificates.c.server_id == server_id, where))
    now = dt.datetime.now(dt.UTC)
    ok: dict[str, set[str]] = {}
    certified: dict[str, set[str]] = {}
    for r in rows:
        owners = serving.get(str(r.host), set()) | ({str(r.route_id)} & set(route_ids))
        for rid in owners:
            if r.dns_ok:
                ok.setdefault(rid, set()).add(str(r.host))
            if r.fingerprint and (r.not_after is None or r.not_after > now):
                certified.setdefault(rid, set()).add(str(r.host))
    return {
        rid: HostStates(frozenset(ok.get(rid, ())), frozenset(certified.get(rid, ())))
        for rid in set(ok) | set(certified)
    }


async def save_hosts(
    session: AsyncSession,
    server_id: str,
    route_id: str,
    team_id: str | None,
    application_id: str | None,
    wanted: Mapping[str, Mapping[str, Any]],
) -> None:
    """The HTTPS hosts of a route now (``{host: {source, dns_ok, dns_reason}}``); its other hosts are
    forgotten (a host another route still serves, by path, is handed to it). A host waits for its
    certificate from the first time it is asked for."""
    await _hand_over(session, server_id, route_id, list(wanted))
    await session.execute(
        sa.delete(certificates).where(
            certificates.c.server_id == server_id,
            certificates.c.route_id == route_id,
            certificates.c.host.not_in(list(wanted)) if wanted else sa.true(),
        )
    )
    if not wanted:
        return
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "server_id": server_id,
            "host": host,
            "route_id": route_id,
            "team_id": team_id,
            "application_id": application_id,
            "source": values["source"],
            "dns_ok": values["dns_ok"],
            "dns_reason": values["dns_reason"],
            "waiting_since": now,
        }
        for host, values in sorted(wanted.items())
    ]
    stmt = insert(certificates).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[certificates.c.server_id, certificates.c.host],
            set_={
                "route_id": stmt.excluded.route_id,
                "team_id": stmt.excluded.team_id,
                "application_id": stmt.excluded.application_id,
                "source": stmt.excluded.source,
                "dns_ok": stmt.excluded.dns_ok,
                "dns_reason": stmt.excluded.dns_reason,
                "waiting_since": sa.func.coalesce(certificates.c.waiting_since, stmt.excluded.waiting_since),
                "updated_at": sa.func.now(),
            },
        )
    )


# A host row of a route that gives the host up goes to another route of the server that still serves the
# host (under another path: ``route_hosts`` claims ``example.com/api``), so its state is kept.
_HAND_OVER = sa.text(
    "UPDATE certificates c SET route_id = o.route_id FROM ("
    " SELECT DISTINCT ON (split_part(host, '/', 1)) split_part(host, '/', 1) AS host, route_id FROM route_hosts"
    " WHERE server_id = :server AND route_id <> :route ORDER BY split_part(host, '/', 1), route_id) o"
    " WHERE c.server_id = :server AND c.route_id = :route AND c.host = o.host AND NOT (c.host = ANY(CAST(:kept AS text[])))"
)


async def _hand_over(session: AsyncSession, server_id: str, route_id: str, kept: list[str]) -> None:
    await session.execute(_HAND_OVER, {"server": server_id, "route": route_id, "kept": kept})


async def forget_route(session: AsyncSession, server_id: str, route_id: str) -> None:
    """Forget a removed route's hosts (a host another route still serves, by path, is handed to it)."""
    await _hand_over(session, server_id, route_id, [])
    await session.execute(
        sa.delete(certificates).where(certificates.c.server_id == server_id, certificates.c.route_id == route_id)
    )


async def hosts(session: AsyncSession, server_id: str) -> dict[str, dict[str, Any]]:
    """Every HTTPS host of ``server_id``: ``{host: row}``."""
    rows = await session.execute(sa.select(certificates).where(certificates.c.server_id == server_id))
    return {str(r.host): dict(r._mapping) for r in rows}


async def update(session: AsyncSession, server_id: str, host: str, values: Mapping[str, Any]) -> None:
    await session.execute(
        sa.update(certificates)
        .where(certificates.c.server_id == server_id, certificates.c.host == host)
        .values(**values, updated_at=sa.func.now())
    )


async def servers_with_tls(session: AsyncSession) -> list[str]:
    """The servers that serve at least one route with TLS options."""
    rows = await session.execute(
        sa.select(routes.c.server_id)
        .where(routes.c.removed.is_(False), routes.c.tls.is_not(None), sa.cast(routes.c.tls, sa.Text) != "null")
        .distinct()
        .order_by(routes.c.server_id)
    )
    return [str(r.server_id) for r in rows]


REFRESH_LOCK = "berth-cert-refresh:{}"  # an application's refresh (exclusive) vs its route batches (shared)


async def lock_refreshes(session: AsyncSession, application_id: str) -> None:
    """Wait for the application's route batches in flight, and hold theirs off, until the transaction ends
    (``REFRESH_LOCK``: a batch tries it shared, never waiting)."""
    await session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": REFRESH_LOCK.format(application_id)}
    )


async def take_refresh(session: AsyncSession, application_id: str, refresh: Refresh) -> bool:
    """Record ``refresh`` as the application's newest certificate refresh (its revision, hosts and
    certificates); False when a newer one was taken already (the same one again is taken: a redelivery
    finishes what it started)."""
    certs = [c.model_dump(mode="json") for c in refresh.certificates]  # the keys sealed, as on the wire
    stmt = insert(certificate_refreshes).values(
        application_id=application_id, revision=refresh.revision, hosts=list(refresh.hosts), certificates=certs
    )
    taken = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[certificate_refreshes.c.application_id],
            set_={
                "revision": stmt.excluded.revision,
                "hosts": stmt.excluded.hosts,
                "certificates": stmt.excluded.certificates,
                "updated_at": sa.func.now(),
            },
            where=certificate_refreshes.c.revision <= stmt.excluded.revision,
        ).returning(certificate_refreshes.c.application_id)
    )
    return taken.first() is not None


async def newest_refreshes(session: AsyncSession, application_ids: Sequence[str]) -> dict[str, Refresh]:
    """The newest refresh taken for each of ``application_ids`` that has one with its certificates."""
    if not application_ids:
        return {}
    rows = await session.execute(
        sa.select(certificate_refreshes).where(
            certificate_refreshes.c.application_id.in_(sorted(set(application_ids))),
            certificate_refreshes.c.certificates.is_not(None),
        )
    )
    return {
        str(r.application_id): Refresh(
            int(r.revision),
            tuple(r.hosts or ()),
            tuple(CustomCertificate.model_validate(c) for c in r.certificates),
        )
        for r in rows
    }
