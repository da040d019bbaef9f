"""Where an application's services run: the servers a user names (by name or id, or ``local``) resolved to
the ids the scheduler places replicas on (``WebService.servers`` in the deployment's snapshot).

A server the team does not have (another team's is answered the same), one being removed, or one being
drained is refused with a 422 naming the list item (``/body/services/<i>/servers/<j>``). The ids are
stored, so renaming a server never moves an application.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import servers as repo
from berth_api.domain.problems import invalid_field

LOCAL_ID = "local"
REFUSED_STATES = {"draining": "is being drained", "removing": "is being removed", "removed": "has been removed"}


def refusal(row: dict[str, Any]) -> str | None:
    """Why no new replica may be placed on the server ``row`` (None: it may)."""
    why = REFUSED_STATES.get(row["state"])
    return None if why is None else f"the server {row['name']} {why}: no new replicas are placed on it"


async def resolve_servers(s: AsyncSession, team_id: str, team_name: str, services: list[dict[str, Any]]) -> None:
    """Replace each service's ``servers`` (names or ids) with the servers' ids, in place; a 422 naming the
    first server that cannot run it."""
    refs = sorted({ref for svc in services for ref in svc.get("servers") or [] if ref != LOCAL_ID})
    rows = await repo.servers_named(s, team_id, refs) if refs else []
    by_id = {r["id"]: r for r in rows}
    by_name = {r["name"]: r for r in rows}
    for i, svc in enumerate(services):
        ids: list[str] = []
        for j, ref in enumerate(svc.get("servers") or []):
            loc = f"/body/services/{i}/servers/{j}"
            row = {"id": LOCAL_ID, "name": LOCAL_ID, "state": "ready"} if ref == LOCAL_ID else None
            row = row or by_id.get(ref) or by_name.get(ref)
            if row is None:
                raise invalid_field(loc, f"no server {ref!r} in team {team_name}")
            why = refusal(row)
            if why is not None:
                raise invalid_field(loc, why)
            if row["id"] in ids:
                raise invalid_field(loc, f"the server {row['name']} is named twice")
            ids.append(row["id"])
        if ids:
            svc["servers"] = ids
        else:
            svc.pop("servers", None)
