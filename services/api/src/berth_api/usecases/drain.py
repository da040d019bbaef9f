"""Draining a server: its applications move to other servers with the normal zero-downtime rollout.

``POST /v1/servers/{id}/drain`` puts the server in state ``draining`` (announced in ``evt.server.changed``:
no new placement goes there), then, for every application placed on it (by its desired state, a running
or its live deployment), replaces the server in each service's ``servers`` of its desired state (by the
``to`` servers; without them by the service's other servers; with none left by ``local``) and starts a
deployment of that desired state through the normal deploy path (``cmd.deployment.start``), all in one
transaction. The scheduler rolls each out: a service with named volumes stops on the drained server, its
volumes' data is copied to the servers taking its place, then it starts there (expected downtime, in the
deployment's log); with ``abandon_volume_data`` nothing is copied and they start empty there (the only
way off a server that does not answer: without it such a move fails naming each volume and the server; the
services without volumes start on the other servers, and the dead server's cleanup is skipped with a note in
the deployment's log). The volumes stay on the drained server (``volumes_kept`` in the answer: volumes are never
deleted implicitly; removing the server later forgets it and leaves them on the machine). The
server shows what is still placed on it (a deployment still running or live there) until they succeeded,
and then it can be removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import servers as repo
from berth_api.domain.identity import Principal
from berth_api.domain.placements import drained_config, volumes_on
from berth_api.domain.problems import invalid_field
from berth_api.usecases import Deps
from berth_api.usecases.deployments import _record, _snapshot, purge, run
from berth_api.usecases.placements import placed, placement_targets
from berth_api.usecases.servers import _refuse_local, announce, server_missing
from berth_common.catalogue import RolloutOptions
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


async def drain(
    deps: Deps, principal: Principal, server_id: str, to: Sequence[str], *, abandon_volume_data: bool = False
) -> dict[str, Any]:
    """Drain the server; the answer is the server (``placed``: what still runs there) with the ids of the
    deployments started (none when nothing was placed on it). Draining again starts a deployment for each
    application still placed on it. ``abandon_volume_data``: the deployments start the volumes leaving the
    server empty where they go, without copying their data (``RolloutOptions.abandon_volume_data``)."""
    _refuse_local(server_id, "drained")

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        row = await repo.get_server(s, principal.team_id, server_id, lock=True)
        if row is None:
            raise server_missing(principal, server_id)
        targets = await placement_targets(s, principal, to, "/body/to")
        if server_id in targets:
            at = next(i for i, v in enumerate(to) if v in (server_id, row["name"]))
            raise invalid_field(f"/body/to/{at}", "the server being drained")
        if row["state"] != "draining":
            row = await repo.update_server(s, server_id, {"state": "draining"})
            await announce(deps.box, unit, server_id)
        started, kept = [], []
        for app in await placed(s, principal.team_id, server_id):
            locked = await apps_repo.get_application(s, principal.team_id, app.application_id, lock=True)
            if locked is None or locked["state"] == "removing":
                continue
            kept += volumes_on(locked["id"], locked["name"], locked["config"], server_id)
            config = drained_config(locked["config"], server_id, targets)
            await apps_repo.update_application(s, locked["id"], config)
            locked = {**locked, "config": config}
            spec = await _snapshot(deps, unit, locked)
            options = RolloutOptions(abandon_volume_data=abandon_volume_data)
            deployment = await _record(deps, unit, principal, locked, spec, options)
            started.append(deployment["id"])
        placed_now = await placed(s, principal.team_id, server_id)
        return {**row, "placed": placed_now, "deployments": started, "volumes_kept": kept}

    result = await run(deps, body)
    await purge(deps)
    log.info(
        "server draining",
        server_id=server_id,
        deployments=result["deployments"],
        to=list(to),
        abandon_volume_data=abandon_volume_data,
    )
    return result
