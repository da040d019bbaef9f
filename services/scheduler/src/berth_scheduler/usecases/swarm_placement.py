"""Where a service runs when it runs on a Swarm: the placement rule, and how each node is reached.

A service placed on one server (``WebService.servers``) that is the manager of a Swarm the scheduler formed
or adopted runs on that Swarm: as one Swarm service per version (``usecases/swarm_rollout.py``), its route on
the manager's Traefik. :func:`swarm_of` finds that Swarm; :func:`node_targets` says how Berth's readiness
check reaches each node (the Berth server the node is, from the directory ``tables.servers``); a node
Berth does not manage (an adopted Swarm's) has none: its tasks are checked over the overlay network from
the manager's node, or through a health check the engine runs there (``usecases/swarm_rollout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common import fleet
from berth_scheduler.adapters import tables
from berth_scheduler.domain.swarm_app import placed_alone

if TYPE_CHECKING:
    from berth_common.ssh import SshTarget


@dataclass(frozen=True)
class SwarmPlace:
    """The Swarm a service runs on: its id, its manager server, its overlay network, its nodes."""

    swarm_id: str
    manager_server_id: str
    network: str
    nodes: tuple[tuple[str, str | None], ...]  # (node id, server id or None)


async def swarm_of(session: AsyncSession, team_id: str, server_ids: list[str]) -> SwarmPlace | None:
    """The team's Swarm a service placed on ``server_ids`` runs on (None: it runs on the servers as they are)."""
    if len(server_ids) != 1:
        return None
    t = tables.swarms
    row = (
        await session.execute(sa.select(t).where(t.c.team_id == team_id, t.c.manager_server_id == server_ids[0]))
    ).first()
    return None if row is None else _place(row)


def _place(row: Any) -> SwarmPlace:
    nodes = tuple((str(n["node_id"]), n.get("server_id")) for n in row.nodes)
    return SwarmPlace(row.id, row.manager_server_id, row.network, nodes)


async def swarms_of_team(session: AsyncSession, team_id: str) -> list[SwarmPlace]:
    """Every Swarm of the team the scheduler formed or adopted (where its applications may run), by id."""
    t = tables.swarms
    return [_place(row) for row in await session.execute(sa.select(t).where(t.c.team_id == team_id).order_by(t.c.id))]


async def swarms_placed(session: AsyncSession, team_id: str, application_id: str) -> list[SwarmPlace]:
    """The team's Swarms a deployment of the application was placed on (by its manager); none is asked
    about an application that never ran on one."""
    places = await swarms_of_team(session, team_id)
    if not places:
        return []
    d = tables.deployments
    specs = (await session.execute(sa.select(d.c.spec).where(d.c.application_id == application_id))).scalars()
    placed = placed_alone(spec for spec in specs if isinstance(spec, dict))
    return [p for p in places if p.manager_server_id in placed]


async def node_targets(session: AsyncSession, place: SwarmPlace) -> dict[str, tuple[str, SshTarget]]:
    """How each node Berth manages is reached (node id -> (server id, SSH target)); unusable servers left out."""
    out: dict[str, tuple[str, SshTarget]] = {}
    for node_id, server_id in place.nodes:
        record = None if server_id is None else await fleet.server_of(session, tables.servers, server_id)
        if record is None or not record.usable:
            continue
        out[node_id] = (record.id, fleet.target_of(record))
    return out
