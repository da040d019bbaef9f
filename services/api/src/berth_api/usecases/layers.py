"""The layers under an application's own variables: its environment groups (attach order), its environment.

Deployments merge them (``domain.layers``: group < environment < application); exports show them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import configvars as repo
from berth_api.domain.layers import Layer
from berth_api.usecases import Deps, variables


async def inherited(deps: Deps, s: AsyncSession, app: dict[str, Any], *, reveal: bool = True) -> list[Layer]:
    """The groups' and the environment's variables of ``app`` (an applications row), lowest first.

    ``reveal``: secret values opened (for a deployment); else left empty (for what may be shown).
    """
    groups = await repo.groups_of(s, app["id"])
    group_vars = await repo.variables_of(s, "group", [g["id"] for g in groups])
    env_id = app["environment_id"]
    env_vars = (await repo.variables_of(s, "environment", [env_id]))[env_id]
    out = []
    for g in groups:
        opened = _values(deps, "group", g["id"], group_vars[g["id"]], reveal)
        out.append(Layer(f"group:{g['name']}", opened["runtime"], opened["build"]))
    opened = _values(deps, "environment", env_id, env_vars, reveal)
    out.append(Layer("environment", opened["runtime"], opened["build"]))
    return out


def _values(deps: Deps, scope: str, owner: str, stored: list[Any], reveal: bool) -> dict[str, list[Any]]:
    if reveal:
        return variables.open_rows(deps.box, scope, owner, stored)
    return variables.masked_rows(stored)
