"""Where an application's services run: the servers a user names (by name or id, or ``local``) resolved to
the ids the scheduler places replicas on (``WebService.servers`` in the deployment's snapshot).

A server the team does not have (another team's is answered the same), one being removed, or one being
drained is refused with a 422 naming the list item (``/body/services/<i>/servers/<j>``; a compose
application's ``/body/placement/<i>/servers/<j>``). The ids are stored, so renaming a server never moves an
application.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import servers as repo
from berth_api.domain.placements import compose_placed
from berth_api.domain.problems import invalid_field

LOCAL_ID = "local"
REFUSED_STATES = {"draining": "is being drained", "removing": "is being removed", "removed": "has been removed"}


def refusal(row: dict[str, Any]) -> str | None:
    """Why no new replica may be placed on the server ``row`` (None: it may)."""
    why = REFUSED_STATES.get(row["state"])
    return None if why is None else f"the server {row['name']} {why}: no new replicas are placed on it"


LOCAL_ROW = {"id": LOCAL_ID, "name": LOCAL_ID, "state": "ready"}


def target_row(ref: str, by_id: dict[str, Any], by_name: dict[str, Any], team_name: str, loc: str) -> dict[str, Any]:
    """The server a user names (id, name or ``local``) as a placement target; a 422 at ``loc`` when the team
    has no such server or no new replica may go there."""
    row = LOCAL_ROW if ref == LOCAL_ID else by_id.get(ref) or by_name.get(ref)
    if row is None:
        raise invalid_field(loc, f"no server {ref!r} in team {team_name}")
    why = refusal(row)
    if why is not None:
        raise invalid_field(loc, why)
    return row


async def rows_named(s: AsyncSession, team_id: str, refs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The team's servers among ``refs`` (ids or names): (by id, by name)."""
    wanted = sorted({ref for ref in refs if ref != LOCAL_ID})
    rows = await repo.servers_named(s, team_id, wanted) if wanted else []
    return {r["id"]: r for r in rows}, {r["name"]: r for r in rows}


async def resolve_servers(s: AsyncSession, team_id: str, team_name: str, services: list[dict[str, Any]]) -> None:
    """Replace each service's ``servers`` (names or ids) with the servers' ids, in place; a 422 naming the
    first server that cannot run it."""
    by_id, by_name = await rows_named(s, team_id, [ref for svc in services for ref in svc.get("servers") or []])
    for i, svc in enumerate(services):
        ids: list[str] = []
        for j, ref in enumerate(svc.get("servers") or []):
            loc = f"/body/services/{i}/servers/{j}"
            row = target_row(ref, by_id, by_name, team_name, loc)
            if row["id"] in ids:
                raise invalid_field(loc, f"the server {row['name']} is named twice")
            ids.append(row["id"])
        if ids:
            svc["servers"] = ids
        else:
            svc.pop("servers", None)


async def resolve_compose(s: AsyncSession, team_id: str, team_name: str, config: dict[str, Any]) -> None:
    """A compose application's placement (``compose_placement``) with its servers' names or ids replaced
    by the ids, in place, and its services placed there (``domain.placements.compose_placed``); a 422 at
    ``/body/placement/<i>/servers/<j>`` for the first server that cannot run it."""
    if not config.get("compose"):
        return  # an application of services names its servers in its services
    entries = config.get("compose_placement") or []
    by_id, by_name = await rows_named(s, team_id, [ref for p in entries for ref in p["servers"]])
    for i, entry in enumerate(entries):
        ids: list[str] = []
        for j, ref in enumerate(entry["servers"]):
            row = target_row(ref, by_id, by_name, team_name, f"/body/placement/{i}/servers/{j}")
            if row["id"] in ids:
                raise invalid_field(f"/body/placement/{i}/servers/{j}", f"the server {row['name']} is named twice")
            ids.append(row["id"])
        entry["servers"] = ids
    config["services"] = compose_placed(config)["services"]
