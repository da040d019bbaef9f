"""The desired routes in the proxy schema: the truth; the Traefik files are derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_proxy_sync.adapters.tables import route_hosts, routes
from berth_proxy_sync.domain.routes import Route

LOCAL = "local"


@dataclass(frozen=True)
class StoredRoute:
    route: Route
    removed: bool

    @property
    def generation(self) -> int:
        return self.route.generation

    @property
    def active(self) -> Route | None:
        return None if self.removed else self.route


def _to_route(row: sa.Row[tuple[object, ...]]) -> Route:
    # Rows were validated on the way in; build without re-validating so a stored tombstone always loads.
    return Route(
        route_id=str(row.route_id),
        hosts=tuple(row.hosts),
        upstreams=tuple(row.upstreams),
        entry_point=str(row.entry_point),
        generation=int(row.generation),
    )


# One statement takes every lock of a command, in array order (a function scan evaluates its rows in
# order): the route's first, then its hosts sorted, so handlers never wait for each other in a cycle.
_LOCK_ALL = sa.text(
    "SELECT count(pg_advisory_xact_lock(hashtext(k))) FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, i)"
)


async def lock(session: AsyncSession, route_id: str, hosts: tuple[str, ...] = (), server_id: str = LOCAL) -> None:
    """Serialise commands for one route (also for a route that has no row yet) until the transaction ends,
    and claims of each of ``hosts`` by different routes (their handlers run concurrently): without the host
    locks two routes could both find a host free and both write their file, the second failing only at
    commit with its file already live."""
    route_key = route_id if server_id == LOCAL else f"{server_id}/{route_id}"
    keys = [f"berth-route:{route_key}", *(f"berth-host:{h}" for h in sorted(set(hosts)))]
    await session.execute(_LOCK_ALL, {"keys": keys})


def _key(server_id: str, route_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(routes.c.server_id == server_id, routes.c.route_id == route_id)


async def load(session: AsyncSession, route_id: str, server_id: str = LOCAL) -> StoredRoute | None:
    row = (await session.execute(sa.select(routes).where(_key(server_id, route_id)))).first()
    return None if row is None else StoredRoute(_to_route(row), bool(row.removed))


async def active_routes(session: AsyncSession, server_id: str = LOCAL) -> list[Route]:
    rows = await session.execute(
        sa.select(routes)
        .where(routes.c.server_id == server_id, routes.c.removed.is_(False))
        .order_by(routes.c.route_id)
    )
    return [_to_route(r) for r in rows]


async def forget_server(session: AsyncSession, server_id: str) -> int:
    """Drop every route of a removed server (its hosts are freed); the number of routes it had."""
    if server_id == LOCAL:
        raise ValueError("the local server is never removed")
    result = await session.execute(sa.delete(routes).where(routes.c.server_id == server_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def host_owners(session: AsyncSession, hosts: tuple[str, ...], route_id: str) -> dict[str, str]:
    """Hosts among ``hosts`` that another route id serves now, on any server: ``{host: route_id}`` (the same
    route id may serve them on several servers: one application service running on many)."""
    rows = await session.execute(
        sa.select(route_hosts.c.host, route_hosts.c.route_id)
        .where(route_hosts.c.host.in_(hosts))
        .where(route_hosts.c.route_id != route_id)
    )
    return {str(r.host): str(r.route_id) for r in rows}


async def save(session: AsyncSession, route: Route, live_ms: float, server_id: str = LOCAL) -> None:
    values = {
        "hosts": list(route.hosts),
        "upstreams": list(route.upstreams),
        "entry_point": route.entry_point,
        "generation": route.generation,
        "removed": False,
        "live_ms": live_ms,
        "updated_at": sa.func.now(),
    }
    await session.execute(
        insert(routes)
        .values(server_id=server_id, route_id=route.route_id, **values)
        .on_conflict_do_update(index_elements=[routes.c.server_id, routes.c.route_id], set_=values)
    )
    await _free_hosts(session, server_id, route.route_id)
    await session.execute(
        insert(route_hosts), [{"host": h, "server_id": server_id, "route_id": route.route_id} for h in route.hosts]
    )


async def _free_hosts(session: AsyncSession, server_id: str, route_id: str) -> None:
    await session.execute(
        sa.delete(route_hosts).where(route_hosts.c.server_id == server_id, route_hosts.c.route_id == route_id)
    )


async def mark_removed(
    session: AsyncSession, route_id: str, generation: int, previous: Route | None, server_id: str = LOCAL
) -> None:
    """Keep a tombstone with the removal's generation; free the hosts."""
    await _free_hosts(session, server_id, route_id)
    values = {"removed": True, "generation": generation, "updated_at": sa.func.now()}
    await session.execute(
        insert(routes)
        .values(
            server_id=server_id,
            route_id=route_id,
            hosts=list(previous.hosts) if previous else [],
            upstreams=list(previous.upstreams) if previous else [],
            entry_point=previous.entry_point if previous else "web",
            **values,
        )
        .on_conflict_do_update(index_elements=[routes.c.server_id, routes.c.route_id], set_=values)
    )
