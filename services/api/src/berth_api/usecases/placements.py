"""Which applications are placed on a server (``domain.placements``), and the servers a drain moves them to
(chosen by the one rule of ``usecases.placement``: a server of the team, or ``local``, that is not being
drained). Used by removing and draining a server."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.placements import placements_of
from berth_api.domain.identity import Principal
from berth_api.domain.placements import Placed, placed_on
from berth_api.usecases import placement


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
    """The server ids ``given`` (ids or names) names, in order, each once; a 422 at ``pointer/<i>`` for one
    that is not the team's (or ``local``), or where no new replica may go (``placement.target_row``)."""
    by_id, by_name = await placement.rows_named(session, principal.team_id, list(given))
    out: list[str] = []
    for i, value in enumerate(given):
        row = placement.target_row(value, by_id, by_name, principal.team_name, f"{pointer}/{i}")
        if row["id"] not in out:
            out.append(row["id"])
    return out
