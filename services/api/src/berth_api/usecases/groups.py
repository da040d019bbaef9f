"""Environment groups (Porter's model): a team's named sets of variables, attached to many applications.

Among several groups of one application, the one attached later wins; any group loses to the environment's
and the application's own variables. A group with ``redeploy_on_change`` redeploys, when its variables
change, every attached application that has a live version: one deployment each, recorded with the change
in one transaction and published through the outbox (the ordinary deployment path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import configvars as repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters.applications import StoredVariable
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, name_taken, not_in_team
from berth_api.usecases import Deps, deployments
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.configvars import DotenvImport, Scoped, export_text, import_scope, replace_scope
from berth_common.catalogue import RolloutOptions
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class GroupRecord:
    row: dict[str, Any]
    variables: list[StoredVariable]
    applications: list[str]
    redeployed: list[str] = field(default_factory=list)  # deployment ids started by this change


def group_missing(principal: Principal, group_id: str) -> ProblemError:
    return not_in_team("environment group", group_id, principal.team_name)


async def _record(s: AsyncSession, row: dict[str, Any]) -> GroupRecord:
    stored = (await repo.variables_of(s, "group", [row["id"]]))[row["id"]]
    apps = (await repo.attached_applications(s, [row["id"]]))[row["id"]]
    return GroupRecord(row, stored, apps)


async def _locked(s: AsyncSession, principal: Principal, group_id: str) -> dict[str, Any]:
    row = await repo.get_group(s, principal.team_id, group_id, lock=True)
    if row is None:
        raise group_missing(principal, group_id)
    return row


async def create_group(
    deps: Deps, principal: Principal, name: str, redeploy: bool, incoming: list[Scoped]
) -> GroupRecord:
    try:
        async with deps.sessionmaker() as s, s.begin():
            row = await repo.insert_group(s, principal.team_id, name, redeploy)
            stored = await replace_scope(deps, s, "group", row["id"], incoming, [])
    except IntegrityError:
        raise name_taken("group", name) from None
    log.info("environment group created", group_id=row["id"], team_id=principal.team_id)
    return GroupRecord(row, stored, [])


async def list_groups(deps: Deps, principal: Principal) -> list[GroupRecord]:
    async with deps.sessionmaker() as s:
        rows = await repo.list_groups(s, principal.team_id)
        ids = [r["id"] for r in rows]
        stored = await repo.variables_of(s, "group", ids)
        apps = await repo.attached_applications(s, ids)
    return [GroupRecord(r, stored[r["id"]], apps[r["id"]]) for r in rows]


async def get_group(deps: Deps, principal: Principal, group_id: str) -> GroupRecord:
    async with deps.sessionmaker() as s:
        row = await repo.get_group(s, principal.team_id, group_id)
        if row is None:
            raise group_missing(principal, group_id)
        return await _record(s, row)


async def update_group(deps: Deps, principal: Principal, group_id: str, values: dict[str, Any]) -> GroupRecord:
    try:
        async with deps.sessionmaker() as s, s.begin():
            await _locked(s, principal, group_id)
            row = await repo.update_group(s, group_id, values) if values else await _locked(s, principal, group_id)
            return await _record(s, row)
    except IntegrityError:
        raise name_taken("group", str(values.get("name"))) from None


async def delete_group(deps: Deps, principal: Principal, group_id: str) -> None:
    async with deps.sessionmaker() as s, s.begin():
        await _locked(s, principal, group_id)
        apps = (await repo.attached_applications(s, [group_id]))[group_id]
        if apps:
            raise ProblemError(409, f"The group is attached to {len(apps)} application(s); detach it first.")
        await repo.delete_group(s, group_id)
    log.info("environment group deleted", group_id=group_id, team_id=principal.team_id)


async def _redeploy(deps: Deps, unit: Unit, principal: Principal, row: dict[str, Any], apps: list[str]) -> list[str]:
    """Start a deployment of every attached application with a live version (when the group opted in), but
    not of one being removed."""
    if not row["redeploy_on_change"] or not apps:
        return []
    live = await deployments_repo.live_of(unit.session, apps)
    removing = await apps_repo.removing_among(unit.session, apps)
    started = []
    for app_id in apps:
        if app_id in live and app_id not in removing:
            dep = await deployments.start_in(deps, unit, principal, app_id, RolloutOptions())
            started.append(str(dep["id"]))
    return started


async def _change_variables(deps: Deps, principal: Principal, group_id: str, change: Any) -> GroupRecord:
    async def body(unit: Unit) -> GroupRecord:
        s = unit.session
        row = await _locked(s, principal, group_id)
        stored = await change(s)
        row = await repo.update_group(s, group_id, {})
        apps = (await repo.attached_applications(s, [group_id]))[group_id]
        started = await _redeploy(deps, unit, principal, row, apps)
        return GroupRecord(row, stored, apps, started)

    record = await deployments.run(deps, body)
    await deployments.purge(deps)
    log.info("group variables changed", group_id=group_id, redeployed=len(record.redeployed))
    return record


async def put_variables(deps: Deps, principal: Principal, group_id: str, incoming: list[Scoped]) -> GroupRecord:
    async def change(s: AsyncSession) -> list[StoredVariable]:
        stored = (await repo.variables_of(s, "group", [group_id]))[group_id]
        return await replace_scope(deps, s, "group", group_id, incoming, stored)

    return await _change_variables(deps, principal, group_id, change)


async def import_variables(deps: Deps, principal: Principal, group_id: str, imp: DotenvImport) -> GroupRecord:
    async def change(s: AsyncSession) -> list[StoredVariable]:
        return await import_scope(deps, s, "group", group_id, imp)

    return await _change_variables(deps, principal, group_id, change)


async def export_variables(deps: Deps, principal: Principal, group_id: str, kind: str, reveal: bool) -> str:
    record = await get_group(deps, principal, group_id)
    return export_text(deps, "group", group_id, record.variables, kind, reveal)  # type: ignore[arg-type]


# --- attachments -----------------------------------------------------------------------------------


async def _both(s: AsyncSession, principal: Principal, group_id: str, application_id: str) -> dict[str, Any]:
    group = await repo.get_group(s, principal.team_id, group_id, lock=True)
    if group is None:
        raise group_missing(principal, group_id)
    app = await apps_repo.get_application(s, principal.team_id, application_id)
    if app is None:
        raise application_missing(principal, application_id)
    refuse_if_removing(app)
    return group


async def attach(deps: Deps, principal: Principal, group_id: str, application_id: str) -> list[dict[str, Any]]:
    """Attach (idempotent); the application's groups in precedence order. Applies at the next deployment."""
    async with deps.sessionmaker() as s, s.begin():
        await _both(s, principal, group_id, application_id)
        if await repo.attach(s, group_id, application_id):
            log.info("group attached", group_id=group_id, application_id=application_id)
        return await repo.groups_of(s, application_id)


async def detach(deps: Deps, principal: Principal, group_id: str, application_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s, s.begin():
        await _both(s, principal, group_id, application_id)
        if not await repo.detach(s, group_id, application_id):
            raise ProblemError(404, f"The group {group_id} is not attached to application {application_id}.")
        log.info("group detached", group_id=group_id, application_id=application_id)
        return await repo.groups_of(s, application_id)


async def groups_of(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        return await repo.groups_of(s, application_id)
