"""The build server an application names (``source.build_server``): a server id or name as the user gives
it, stored as the id of one of the team's servers (``local``, or none: the control plane's engine)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import servers as servers_repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import invalid_field
from berth_common.catalogue import LOCAL_SERVER


async def resolve(s: AsyncSession, principal: Principal, config: dict[str, Any]) -> None:
    """Replace the given build server by the id of the team's server it names (in place); 422 naming the
    field when the team has no such server."""
    source = config["source"]
    given = source.get("build_server") if source.get("kind") == "git" else None
    if not given:
        return
    if given == LOCAL_SERVER:
        source["build_server"] = None
        return
    row = await servers_repo.find_server(s, principal.team_id, given)
    if row is None:
        raise invalid_field(
            "/body/source/build_server", f"the team {principal.team_name} has no server {given!r} (GET /v1/servers)"
        )
    source["build_server"] = row["id"]
