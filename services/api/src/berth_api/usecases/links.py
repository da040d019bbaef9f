"""Links between an application and the team's databases: the database's connection URL becomes a secret
runtime variable (``DATABASE_URL``, ``REDIS_URL``, ... or a name the link gives) of every deployment of the
application, and the application's containers join the network the database is on (on ``local``, the
team's network ``berth-team-<team id>``; on another server, the server's Berth network, which they join
anyway), where the database's private host name resolves.

A link's variable is added to the snapshot over the application's own variable of that name. Rotating a
database's credentials redeploys every linked application that has a live version (one deployment each,
recorded with the change in one transaction), as an environment group's change does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import databases as repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps, deployments
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.connection_urls import database_missing
from berth_common import dbengines
from berth_common.catalogue import RolloutOptions
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


async def link(
    deps: Deps, principal: Principal, application_id: str, database_id: str, variable: str | None
) -> dict[str, Any]:
    """Link (the variable defaults to the engine's: ``DATABASE_URL``, ``REDIS_URL``, ``MONGODB_URL``);
    applies at the application's next deployment."""
    try:
        async with deps.sessionmaker() as s, s.begin():
            app = await apps_repo.get_application(s, principal.team_id, application_id, lock=True)
            if app is None:
                raise application_missing(principal, application_id)
            refuse_if_removing(app)
            db = await repo.get_database(s, principal.team_id, database_id)
            if db is None:
                raise invalid_field("/body/database_id", f"no database {database_id} in team {principal.team_name}")
            name = variable or dbengines.engine(db["engine"]).variable
            row = await repo.insert_link(s, application_id, database_id, name)
    except IntegrityError as exc:
        if "database_links_variable" in str(exc.orig):
            raise invalid_field(
                "/body/variable", f"another link of the application sets {name}", status=409, type_="conflict"
            ) from None
        raise ProblemError(409, f"The application links database {database_id} already.") from None
    log.info("database linked", application_id=application_id, database_id=database_id, variable=name)
    return row


async def unlink(deps: Deps, principal: Principal, application_id: str, database_id: str) -> None:
    """Unlink (idempotent: a database of the team that is not linked is unlinked already)."""
    async with deps.sessionmaker() as s, s.begin():
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        if await repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        if await repo.delete_link(s, application_id, database_id):
            log.info("database unlinked", application_id=application_id, database_id=database_id)


async def links_of(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        return await repo.links_of_application(s, application_id)


async def redeploy_linked(deps: Deps, unit: Unit, database: dict[str, Any]) -> list[str]:
    """Inside ``unit``: a deployment of every application linking ``database`` that has a live version and is
    not being removed, attributed to the admin who asked for the change."""
    apps = await repo.applications_linked_to(unit.session, database["id"])
    if not apps:
        return []
    live = await deployments_repo.live_of(unit.session, apps)
    removing = await apps_repo.removing_among(unit.session, apps)
    principal = Principal(
        user_id=database["rotated_by"] or "",
        user_email="",
        user_name="",
        team_id=database["team_id"],
        team_name=database["team_id"],
        role="admin",
        token_id="",
        token_name="",
    )
    started = []
    for app_id in apps:
        if app_id in live and app_id not in removing:
            try:
                dep = await deployments.start_in(deps, unit, principal, app_id, RolloutOptions())
            except ProblemError as exc:  # an application that cannot deploy now is left for its owner
                log.warning("linked application not redeployed", application_id=app_id, reason=exc.detail)
                continue
            started.append(str(dep["id"]))
    return started
