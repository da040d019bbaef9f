"""Preview settings of an application (host pattern, forks, database, time-to-live, the most previews at
once, preview-only variables sealed) and the previews a person sees and destroys; ``usecases.previews``
makes and destroys them from pull request deliveries, within the limit checked here (``room``).
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import previews as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.adapters.secretbox import SecretUnavailableError
from berth_api.domain import previews as domain
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing
from berth_common.logging import get_logger

log = get_logger(__name__)


def aad(application_id: str) -> str:
    return row_aad("preview_settings", application_id)


async def room(s: AsyncSession, application_id: str, settings: dict[str, Any]) -> str | None:
    """Why the application may not have one more active preview (None: it may): a new pull request and one
    reopened after (or while) its preview was destroyed count alike against ``max_previews``."""
    if await repo.count_active(s, application_id) >= settings["max_previews"]:
        return f"the application has {settings['max_previews']} previews: the limit"
    return None


# -- settings ------------------------------------------------------------------------------------------


def _shown(row: dict[str, Any], variables: list[dict[str, Any]]) -> dict[str, Any]:
    shown = [{**v, "value": None if v.get("secret") else v.get("value")} for v in variables]
    return {k: row[k] for k in row if k not in ("sealed", "team_id", "id")} | {"env": shown, "enabled": True}


OFF = {
    "enabled": False,
    "host_pattern": domain.DEFAULT_PATTERN,
    "allow_forks": False,
    "database": "none",
    "database_engine": "postgresql",
    "ttl_hours": 72,
    "max_previews": 5,
    "env": [],
}  # what GET shows while previews are off (the defaults a PUT starts from)


async def put_settings(deps: Deps, principal: Principal, application_id: str, given: dict[str, Any]) -> dict[str, Any]:
    """Turn previews on (or change them); ``given``: host_pattern, allow_forks, database, ttl_hours,
    max_previews, env (preview-only variables; a secret without a value keeps the stored one)."""
    problem = domain.check_pattern(given["host_pattern"])
    if problem is not None:
        raise invalid_field("/body/host_pattern", problem)
    async with deps.sessionmaker() as s, s.begin():
        app = await apps_repo.get_application(s, principal.team_id, application_id)
        if app is None:
            raise application_missing(principal, application_id)
        old = await repo.settings_of(s, application_id)
        stored = open_variables(deps, old) if old is not None else []
        kept = {v["name"]: v for v in stored}
        env = []
        for i, v in enumerate(given.get("env") or []):
            if v.get("value") is None and v.get("secret") and v["name"] in kept:
                v = {**v, "value": kept[v["name"]]["value"]}
            elif v.get("value") is None and v.get("secret"):
                raise invalid_field(f"/body/env/{i}/value", "a new secret needs a value")
            env.append(v)
        await hold_for_sealing(s, deps.box)
        values = {k: given[k] for k in ("host_pattern", "allow_forks", "database", "ttl_hours", "max_previews")}
        values |= {"id": application_id, "team_id": principal.team_id}
        values["sealed"] = deps.box.seal(domain.dump_variables(env), aad(application_id))
        row = await repo.put_settings(s, values)
    return _shown(row, env)


def open_variables(deps: Deps, row: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return cast(list[dict[str, Any]], json.loads(deps.box.open(row["sealed"], aad(row["id"]))))
    except SecretUnavailableError:
        log.error("preview variables do not open", application_id=row["id"])
        return []


async def get_settings(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        row = await repo.settings_of(s, application_id)
    if row is None:
        return dict(OFF)
    return _shown(row, open_variables(deps, row))


async def drop_settings(deps: Deps, principal: Principal, application_id: str) -> None:
    """Previews off for new pull requests (existing previews stay until their pull request closes)."""
    async with deps.sessionmaker() as s, s.begin():
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        await repo.drop_settings(s, application_id)


async def list_previews(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        return await repo.of_application(s, application_id)


async def destroy(deps: Deps, principal: Principal, application_id: str, preview_id: str) -> None:
    """Destroy one preview now (as its pull request closing would)."""
    async with deps.sessionmaker() as s, s.begin():
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        row = await repo.by_id(s, preview_id)
        if row is None or row["application_id"] != application_id:
            raise ProblemError(404, f"Application {application_id} has no preview {preview_id}.")
        await repo.update(s, row["id"], want="destroy")
