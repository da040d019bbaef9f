"""A team's Swarms: one made of the team's servers (a manager and workers) or adopted from a manager already in
a Swarm; forming it again; forgetting it (the Swarm keeps running unless asked to be taken apart).

Creating and forming again send ``cmd.swarm.form`` through the outbox in the same transaction as the row;
carries out ``evt.swarm.formed`` and ``evt.swarm.failed`` (the scheduler's answers, ordered by ``attempt``:
an answer to an older attempt is ignored). Join tokens never reach the api: the scheduler reads them from
the manager and keeps them sealed. Every server named must be one of the team's and in no other of its
Swarms (whether it can be reached is the scheduler's to find: a server not validated yet fails the forming,
with its name); another team's Swarm is a 404 like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from berth_api.adapters import servers as server_repo
from berth_api.adapters import swarms as repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.deployments import run
from berth_common.catalogue import SWARM_NETWORK, DissolveSwarm, FormSwarm, SwarmFailed, SwarmFormed
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SwarmInput:
    name: str
    manager_server_id: str
    worker_server_ids: tuple[str, ...]
    adopt: bool


def swarm_missing(principal: Principal, swarm_id: str) -> ProblemError:
    return not_in_team("swarm", swarm_id, principal.team_name)


def _form(row: dict[str, Any]) -> FormSwarm:
    return FormSwarm(
        swarm_id=row["id"],
        team_id=row["team_id"],
        attempt=row["attempt"],
        manager_server_id=row["manager_server_id"],
        worker_server_ids=list(row["worker_server_ids"]),
        adopt=row["adopt"],
        network=row["network"],
    )


async def _check_servers(unit: Unit, principal: Principal, given: SwarmInput) -> None:
    named = [("/body/manager_server_id", given.manager_server_id)]
    named += [(f"/body/worker_server_ids/{i}", s) for i, s in enumerate(given.worker_server_ids)]
    seen: set[str] = set()
    for loc, server_id in named:
        if server_id in seen:
            raise invalid_field(loc, f"server {server_id} is named twice")
        seen.add(server_id)
        if await server_repo.get_server(unit.session, principal.team_id, server_id) is None:
            raise invalid_field(loc, f"no server {server_id} in team {principal.team_name}")
    for other in await repo.swarms_with_servers(unit.session, principal.team_id):
        taken = seen & {other["manager_server_id"], *other["worker_server_ids"]}
        if taken:
            raise ProblemError(409, f"Server {sorted(taken)[0]} is in Swarm {other['name']} already.")


async def create(deps: Deps, principal: Principal, given: SwarmInput) -> dict[str, Any]:
    swarm_id = new_id()

    async def body(unit: Unit) -> dict[str, Any]:
        await _check_servers(unit, principal, given)
        row = await repo.insert_swarm(
            unit.session,
            {
                "id": swarm_id,
                "team_id": principal.team_id,
                "name": given.name,
                "manager_server_id": given.manager_server_id,
                "worker_server_ids": list(given.worker_server_ids),
                "adopt": given.adopt,
                "network": SWARM_NETWORK,
                "nodes": [],
                "created_by": principal.user_id,
            },
        )
        await unit.emit(_form(row), id=f"swarm-form-{swarm_id}-{row['attempt']}")
        return row

    try:
        row = await run(deps, body)
    except IntegrityError:
        raise name_taken("swarm", given.name) from None
    log.info("swarm requested", swarm_id=swarm_id, team_id=principal.team_id, adopt=given.adopt)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_swarms(s, principal.team_id)


async def get(deps: Deps, principal: Principal, swarm_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_swarm(s, principal.team_id, swarm_id)
    if row is None:
        raise swarm_missing(principal, swarm_id)
    return row


async def form_again(deps: Deps, principal: Principal, swarm_id: str) -> dict[str, Any]:
    """Form the Swarm again (a failed one after a fix, or to see its nodes now): state ``forming``."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await repo.get_swarm(unit.session, principal.team_id, swarm_id, lock=True)
        if row is None:
            raise swarm_missing(principal, swarm_id)
        row = await repo.update_swarm(unit.session, swarm_id, {"attempt": row["attempt"] + 1, "state": "forming"})
        await unit.emit(_form(row), id=f"swarm-form-{swarm_id}-{row['attempt']}")
        return row

    return await run(deps, body)


async def delete(deps: Deps, principal: Principal, swarm_id: str, dissolve: bool = False) -> None:
    """Forget the Swarm; it keeps running unless ``dissolve`` (then its nodes leave it)."""

    async def body(unit: Unit) -> None:
        row = await repo.get_swarm(unit.session, principal.team_id, swarm_id, lock=True)
        if row is None:
            raise swarm_missing(principal, swarm_id)
        if dissolve:
            command = DissolveSwarm(
                swarm_id=swarm_id,
                team_id=row["team_id"],
                attempt=row["attempt"],
                manager_server_id=row["manager_server_id"],
                worker_server_ids=list(row["worker_server_ids"]),
            )
            await unit.emit(command, id=f"swarm-dissolve-{swarm_id}")
        await repo.delete_swarm(unit.session, swarm_id)

    await run(deps, body)
    log.info("swarm removed", swarm_id=swarm_id, dissolve=dissolve)


async def on_answer(msg: SwarmFormed | SwarmFailed, unit: Unit) -> None:
    """Show what the scheduler did; an answer to an older attempt, or for a Swarm forgotten since, is ignored."""
    row = await repo.get_swarm(unit.session, msg.team_id, msg.swarm_id, lock=True)
    if row is None or row["attempt"] != msg.attempt:
        log.info("stale swarm answer ignored", swarm_id=msg.swarm_id, attempt=msg.attempt)
        return
    if isinstance(msg, SwarmFormed):
        values: dict[str, Any] = {
            "state": "ready",
            "reason": "",
            "cluster_id": msg.cluster_id,
            "nodes": [n.model_dump() for n in msg.nodes],
            "formed_at": datetime.now(UTC),
        }
    else:
        values = {"state": "failed", "reason": msg.reason}
    await repo.update_swarm(unit.session, msg.swarm_id, values)
    log.info("swarm answer recorded", swarm_id=msg.swarm_id, state=values["state"])
