"""Which applications are placed on a server (``domain.placements``), and which servers may be chosen as a
new placement: a server of the team (or ``local``) that is not being drained. Used by removing and draining
a server, and by whatever sets a service's ``servers``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import servers as repo
from berth_api.adapters.placements import placements_of
from berth_api.domain.identity import Principal
from berth_api.domain.placements import LOCAL, Placed, placed_on
from berth_api.domain.problems import invalid_field


async def placed(session: AsyncSession, team_id: str, server_id: str) -> list[Placed]:
    """The team's applications whose desired state, running deployment or live deployment names the server."""
    apps, snapshots = await placements_of(session, team_id)
    return placed_on(server_id, apps, snapshots)


def naming(apps: Sequence[Placed]) -> str:
    """``shop (web, worker), blog (web)``: the applications and their services, for a person."""
    return ", ".join(f"{p.name} ({', '.join(p.services)})" for p in apps)


async def placement_targets(
    session: AsyncSession, principal: Principal, given: Sequence[str], pointer: str
) -> list[str]:
    """The server ids ``given`` (ids or names) names, in order; a 422 at ``pointer/<i>`` for one that is not
    the team's (or ``local``), or that is being drained: no new placement goes there."""
    out: list[str] = []
    rows = await repo.list_servers(session, principal.team_id)
    by_id = {r["id"]: r for r in rows}
    by_name = {r["name"]: r for r in rows}
    for i, value in enumerate(given):
        if value == LOCAL:
            server_id = LOCAL
        else:
            row = by_id.get(value) or by_name.get(value)
            if row is None:
                raise invalid_field(f"{pointer}/{i}", f"no server {value} in team {principal.team_name}")
            if row["state"] == "draining":
                raise invalid_field(f"{pointer}/{i}", f"server {row['name']} is being drained: nothing new goes there")
            server_id = row["id"]
        if server_id not in out:
            out.append(server_id)
    return out
