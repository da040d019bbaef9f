"""The desired routes in the proxy schema: the truth; the Traefik files are derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_proxy_sync.adapters.tables import route_hosts, routes
from berth_proxy_sync.domain.routes import Route


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


# One statement tries every lock of a batch, in array order, without waiting: a command whose route or
# host is locked by another transaction waits for a later batch instead of holding up the others.
_TRY_LOCKS = sa.text(
    "SELECT pg_try_advisory_xact_lock(hashtext(k)) AS got "
    "FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, i) ORDER BY i"
)


async def try_locks(session: AsyncSession, keys: list[str]) -> list[bool]:
    """Take each of ``keys`` as a transaction-scoped advisory lock if free; whether each was taken.

    The locks serialise commands for one route (also a route that has no row yet) and claims of one host
    with any other transaction working on them (another proxy-sync, or a batch of another site)."""
    if not keys:
        return []
    rows = await session.execute(_TRY_LOCKS, {"keys": keys})
    return [bool(r.got) for r in rows]


async def load_many(session: AsyncSession, route_ids: list[str]) -> dict[str, StoredRoute]:
    if not route_ids:
        return {}
    rows = await session.execute(sa.select(routes).where(routes.c.route_id.in_(route_ids)))
    return {str(r.route_id): StoredRoute(_to_route(r), bool(r.removed)) for r in rows}


async def active_routes(session: AsyncSession) -> list[Route]:
    rows = await session.execute(sa.select(routes).where(routes.c.removed.is_(False)).order_by(routes.c.route_id))
    return [_to_route(r) for r in rows]


async def host_owners(session: AsyncSession, hosts: list[str]) -> dict[str, str]:
    """The route serving each of ``hosts`` now (hosts nobody serves are absent): ``{host: route_id}``."""
    if not hosts:
        return {}
    rows = await session.execute(
        sa.select(route_hosts.c.host, route_hosts.c.route_id).where(route_hosts.c.host.in_(hosts))
    )
    return {str(r.host): str(r.route_id) for r in rows}


async def save_many(session: AsyncSession, applied: list[tuple[Route, float]]) -> None:
    """Record routes confirmed live (``(route, live_ms)``) and their hosts, in a few statements."""
    if not applied:
        return
    rows = [
        {
            "route_id": route.route_id,
            "hosts": list(route.hosts),
            "upstreams": list(route.upstreams),
            "entry_point": route.entry_point,
            "generation": route.generation,
            "removed": False,
            "live_ms": live_ms,
        }
        for route, live_ms in applied
    ]
    stmt = insert(routes).values(rows)
    updated = {c: stmt.excluded[c] for c in ("hosts", "upstreams", "entry_point", "generation", "removed", "live_ms")}
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[routes.c.route_id], set_={**updated, "updated_at": sa.func.now()})
    )
    ids = [route.route_id for route, _ in applied]
    await session.execute(sa.delete(route_hosts).where(route_hosts.c.route_id.in_(ids)))
    await session.execute(
        insert(route_hosts), [{"host": h, "route_id": route.route_id} for route, _ in applied for h in route.hosts]
    )


async def mark_removed_many(session: AsyncSession, removed: list[tuple[str, int, Route | None]]) -> None:
    """Keep a tombstone with each removal's generation (``(route_id, generation, previous)``); free the hosts."""
    if not removed:
        return
    ids = [route_id for route_id, _, _ in removed]
    await session.execute(sa.delete(route_hosts).where(route_hosts.c.route_id.in_(ids)))
    rows = [
        {
            "route_id": route_id,
            "hosts": list(previous.hosts) if previous else [],
            "upstreams": list(previous.upstreams) if previous else [],
            "entry_point": previous.entry_point if previous else "web",
            "removed": True,
            "generation": generation,
        }
        for route_id, generation, previous in removed
    ]
    stmt = insert(routes).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[routes.c.route_id],
            set_={"removed": True, "generation": stmt.excluded.generation, "updated_at": sa.func.now()},
        )
    )
