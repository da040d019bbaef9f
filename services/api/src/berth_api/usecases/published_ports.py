"""The ports a compose application publishes on its servers, each (server, port, protocol) claimed for one
application: refused (409, naming the port and who holds it) when another application publishes it there or
a database's public port is it. Claimed when the application is created or changed and again at each
deployment (a compose file of the repository may have changed); the claims of a port the definition no
longer publishes are released then, and all of them with the application."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import published_ports as repo
from berth_api.adapters.data_tables import databases
from berth_api.domain.compose.published_ports import port_claims
from berth_api.domain.problems import invalid_field


def _conflict(loc: str, detail: str) -> Exception:
    return invalid_field(loc, detail, status=409, type_="conflict")


async def database_ports(s: AsyncSession, server_ids: list[str]) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(server, public port) -> (database id, name, team id) of the public databases on ``server_ids``."""
    if not server_ids:
        return {}
    q = sa.select(databases.c.id, databases.c.name, databases.c.team_id, databases.c.server_id, databases.c.public)
    rows = (await s.execute(q.where(databases.c.server_id.in_(server_ids), databases.c.public.isnot(None)))).all()
    return {(r.server_id, int(r.public["port"])): (r.id, r.name, r.team_id) for r in rows if r.public}


async def sync(s: AsyncSession, application_id: str, team_id: str, config: dict[str, Any]) -> None:
    """Claim the ports the application's configuration publishes (and release the others it held)."""
    claims = port_claims(config)
    taken = await repo.holders(s, [c.key for c in claims], application_id)
    publics = await database_ports(s, sorted({c.server_id for c in claims if c.protocol == "tcp"}))
    for c in claims:
        where = f"the port {c.port}/{c.protocol} of server {c.server_id}"
        holder = taken.get(c.key)
        if holder is not None:
            who = (
                f"the application {holder.name} ({holder.application_id}, service {holder.service})"
                if holder.team_id == team_id
                else "an application of another team"
            )
            raise _conflict(c.loc, f"{where} is published by {who}: each port of a server is one application's")
        db = publics.get((c.server_id, c.port)) if c.protocol == "tcp" else None
        if db is not None:
            who = f"the database {db[1]} ({db[0]})" if db[2] == team_id else "a database of another team"
            raise _conflict(c.loc, f"{where} is the public port of {who}")
    try:
        await repo.replace(s, application_id, [(c.key, c.service) for c in claims])
    except IntegrityError:  # claimed by another application meanwhile (its transaction committed first)
        ports = ", ".join(f"{c.port}/{c.protocol}" for c in claims)
        raise _conflict(claims[0].loc, f"a port ({ports}) was just published by another application") from None


async def holder_of(s: AsyncSession, server_id: str, port: int, team_id: str) -> str | None:
    """Who publishes the TCP ``port`` of a server (for a database's public port), or None."""
    found = (await repo.holders(s, [(server_id, port, "tcp")], None)).get((server_id, port, "tcp"))
    if found is None:
        return None
    if found.team_id != team_id:
        return "an application of another team"
    return f"the application {found.name} ({found.application_id}, service {found.service})"
