"""A database's connection URL as its linked applications get it, and the variables a deployment's snapshot
gains from its links (``usecases/links.py`` makes and removes the links; ``usecases/databases.py`` owns the
databases). Kept apart from both so that starting a deployment never needs the modules that start one."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import databases as repo
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, not_in_team
from berth_api.usecases import Deps
from berth_common import dbengines
from berth_common.catalogue import ApplicationSpec, EnvVar


def database_missing(principal: Principal, database_id: str) -> ProblemError:
    return not_in_team("database", database_id, principal.team_name)


def _aad(database_id: str, pending: bool = False) -> str:
    """What a database's sealed password (or the one waiting on a rotation) is bound to."""
    return row_aad("databases", database_id) + (":pending" if pending else "")


def url_of(deps: Deps, row: dict[str, Any]) -> str:
    password = deps.box.open(row["sealed"], _aad(row["id"]))
    creds = dbengines.Credentials(row["username"], password, row["database"])
    return dbengines.connection_url(row["engine"], creds, dbengines.container_name(row["id"]))


async def with_links(deps: Deps, s: AsyncSession, app: dict[str, Any], spec: ApplicationSpec) -> ApplicationSpec:
    """The snapshot with each linked database's connection URL as a secret variable (over a variable of
    the same name), on the team's network when it links any."""
    linked = await repo.linked_databases(s, app["id"])
    if not linked:
        return spec
    urls = {row["variable"]: url_of(deps, row) for row in linked}
    env = [e for e in spec.env if e.name not in urls]
    env += [EnvVar(name=name, value=SecretStr(value), secret=True) for name, value in urls.items()]
    network = spec.network or dbengines.team_network(app["team_id"])
    return spec.model_copy(update={"env": env, "network": network})
