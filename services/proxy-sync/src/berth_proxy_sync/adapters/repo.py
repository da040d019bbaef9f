"""The desired routes in the proxy schema: the truth; the Traefik files are derived from it.

A route is (server_id, route_id): one route on one server's Traefik (``local``: the control plane's own).
A batch of route changes is on one server; its functions take that server's id. A host is claimed by one
route id on any server (the same route id may serve it on several servers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue.buffering import RequestBuffering
from berth_common.catalogue.tls import TlsOptions
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
        tls=TlsOptions.model_validate(row.tls) if row.tls else None,
        buffering=None if row.buffer_max_body_mb is None else RequestBuffering(max_body_mb=row.buffer_max_body_mb),
        path=row.path_prefix,
    )


def _tls_json(route: Route | None) -> dict[str, object] | None:
    """The route's TLS options as stored: JSON, an uploaded certificate's key sealed."""
    return None if route is None or route.tls is None else route.tls.model_dump(mode="json")


def _buffer_mb(route: Route | None) -> int | None:
    return None if route is None or route.buffering is None else route.buffering.max_body_mb


# One statement tries every lock of a batch, in array order, without waiting, each shared or exclusive: a
# command whose route or host is locked by another transaction waits for a later batch instead of holding
# up the others.
_TRY_LOCKS = sa.text(
    "SELECT CASE WHEN s THEN pg_try_advisory_xact_lock_shared(hashtext(k)) "
    "ELSE pg_try_advisory_xact_lock(hashtext(k)) END AS got "
    "FROM unnest(CAST(:keys AS text[]), CAST(:shared AS boolean[])) WITH ORDINALITY AS t(k, s, i) ORDER BY i"
)


async def try_locks(session: AsyncSession, keys: list[str], shared: Sequence[bool] = ()) -> list[bool]:
    """Take each of ``keys`` (``domain/batches.py command_locks``) as a transaction-scoped advisory lock if
    free, shared where ``shared`` says so (exclusive by default); whether each was taken.

    The locks serialise commands for one route of one server (also a route that has no row yet), and a
    host's change of owner with any other transaction working on that host (another proxy-sync, or another
    server's batch); commands of the route id that keeps owning a host share its lock."""
    if not keys:
        return []
    flags = list(shared) or [False] * len(keys)
    if len(flags) != len(keys):
        raise ValueError("one lock mode per key")
    rows = await session.execute(_TRY_LOCKS, {"keys": keys, "shared": flags})
    return [bool(r.got) for r in rows]


async def held_hosts(session: AsyncSession, route_ids: Sequence[str]) -> dict[str, dict[str, set[str]]]:
    """The hosts each of ``route_ids`` serves now, on any server, with the servers it serves each on:
    ``{route_id: {host: {server_id}}}`` (``domain/batches.py host_lock_modes``)."""
    if not route_ids:
        return {}
    rows = await session.execute(
        sa.select(route_hosts.c.route_id, route_hosts.c.host, route_hosts.c.server_id).where(
            route_hosts.c.route_id.in_(route_ids)
        )
    )
    held: dict[str, dict[str, set[str]]] = {}
    for r in rows:
        held.setdefault(str(r.route_id), {}).setdefault(str(r.host), set()).add(str(r.server_id))
    return held


async def load_many(session: AsyncSession, server_id: str, route_ids: list[str]) -> dict[str, StoredRoute]:
    """The stored routes (tombstones too) of ``server_id`` among ``route_ids``: ``{route_id: stored}``."""
    if not route_ids:
        return {}
    rows = await session.execute(
        sa.select(routes).where(routes.c.server_id == server_id, routes.c.route_id.in_(route_ids))
    )
    return {str(r.route_id): StoredRoute(_to_route(r), bool(r.removed)) for r in rows}


async def load(session: AsyncSession, route_id: str, server_id: str = LOCAL) -> StoredRoute | None:
    return (await load_many(session, server_id, [route_id])).get(route_id)


async def active_routes(session: AsyncSession, server_id: str = LOCAL) -> list[Route]:
    rows = await session.execute(
        sa.select(routes)
        .where(routes.c.server_id == server_id, routes.c.removed.is_(False))
        .order_by(routes.c.route_id)
    )
    return [_to_route(r) for r in rows]


async def servers_with_routes(session: AsyncSession) -> list[str]:
    """Every server other than ``local`` that has an active route, in order."""
    rows = await session.execute(
        sa.select(routes.c.server_id)
        .where(routes.c.server_id != LOCAL, routes.c.removed.is_(False))
        .distinct()
        .order_by(routes.c.server_id)
    )
    return [str(r) for r in rows.scalars()]


async def forget_server(session: AsyncSession, server_id: str) -> int:
    """Drop every route of a removed server (its hosts are freed); the number of routes it had."""
    if server_id == LOCAL:
        raise ValueError("the local server is never removed")
    result = await session.execute(sa.delete(routes).where(routes.c.server_id == server_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def host_owners(session: AsyncSession, hosts: Sequence[str], route_id: str | None = None) -> dict[str, str]:
    """The route id serving each of ``hosts`` now, on any server (hosts nobody serves are absent; with
    ``route_id``, hosts only that route id serves are absent too): ``{host: route_id}``. The same route id
    may serve a host on several servers (one application service running on many)."""
    if not hosts:
        return {}
    query = sa.select(route_hosts.c.host, route_hosts.c.route_id).where(route_hosts.c.host.in_(hosts))
    if route_id is not None:
        query = query.where(route_hosts.c.route_id != route_id)
    rows = await session.execute(query)
    return {str(r.host): str(r.route_id) for r in rows}


async def save_many(session: AsyncSession, server_id: str, applied: list[tuple[Route, float]]) -> None:
    """Record routes of ``server_id`` confirmed live (``(route, live_ms)``) and their hosts, in a few
    statements."""
    if not applied:
        return
    rows = [
        {
            "server_id": server_id,
            "route_id": route.route_id,
            "hosts": list(route.hosts),
            "upstreams": list(route.upstreams),
            "entry_point": route.entry_point,
            "generation": route.generation,
            "removed": False,
            "live_ms": live_ms,
            "tls": _tls_json(route),
            "buffer_max_body_mb": _buffer_mb(route),
            "path_prefix": route.path,
        }
        for route, live_ms in applied
    ]
    stmt = insert(routes).values(rows)
    changed = (
        "hosts",
        "upstreams",
        "entry_point",
        "generation",
        "removed",
        "live_ms",
        "tls",
        "buffer_max_body_mb",
        "path_prefix",
    )
    updated = {c: stmt.excluded[c] for c in changed}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[routes.c.server_id, routes.c.route_id], set_={**updated, "updated_at": sa.func.now()}
        )
    )
    await _free_hosts(session, server_id, [route.route_id for route, _ in applied])
    await session.execute(
        insert(route_hosts),
        [{"host": h, "server_id": server_id, "route_id": route.route_id} for route, _ in applied for h in route.claims],
    )


async def save(session: AsyncSession, route: Route, live_ms: float, server_id: str = LOCAL) -> None:
    await save_many(session, server_id, [(route, live_ms)])


async def _free_hosts(session: AsyncSession, server_id: str, route_ids: list[str]) -> None:
    await session.execute(
        sa.delete(route_hosts).where(route_hosts.c.server_id == server_id, route_hosts.c.route_id.in_(route_ids))
    )


async def mark_removed_many(
    session: AsyncSession, server_id: str, removed: list[tuple[str, int, Route | None]]
) -> None:
    """Keep a tombstone with each removal's generation (``(route_id, generation, previous)``) on
    ``server_id``; free the hosts."""
    if not removed:
        return
    await _free_hosts(session, server_id, [route_id for route_id, _, _ in removed])
    rows = [
        {
            "server_id": server_id,
            "route_id": route_id,
            "hosts": list(previous.hosts) if previous else [],
            "upstreams": list(previous.upstreams) if previous else [],
            "entry_point": previous.entry_point if previous else "web",
            "removed": True,
            "generation": generation,
            "tls": _tls_json(previous),
            "buffer_max_body_mb": _buffer_mb(previous),
            "path_prefix": previous.path if previous else None,
        }
        for route_id, generation, previous in removed
    ]
    stmt = insert(routes).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[routes.c.server_id, routes.c.route_id],
            set_={"removed": True, "generation": stmt.excluded.generation, "updated_at": sa.func.now()},
        )
    )


async def serving(session: AsyncSession, hosts: Sequence[str]) -> list[tuple[str, Route]]:
    """The active routes that serve one of ``hosts`` (under any path), on any server: ``(server_id, route)``."""
    if not hosts:
        return []
    claimed = sa.select(route_hosts.c.server_id, route_hosts.c.route_id).where(
        sa.func.split_part(route_hosts.c.host, "/", 1).in_([h.lower() for h in hosts])
    )
    rows = await session.execute(
        sa.select(routes)
        .where(sa.tuple_(routes.c.server_id, routes.c.route_id).in_(claimed), routes.c.removed.is_(False))
        .order_by(routes.c.server_id, routes.c.route_id)
    )
    return [(str(r.server_id), _to_route(r)) for r in rows]
