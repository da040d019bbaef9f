"""Start again the live version's replicas an engine restart left exited, and remove the containers a
rollout left behind on a server that did not answer then (``domain/revival.py``).

Run for one application at a time in the orchestrator's slot for it, so no rollout of that application
runs at the same moment; a server that does not answer is tried again at the next pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from berth_common import labels
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import ContainerInfo, DockerExecutor, DockerOperationError
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain.revival import leftovers, should_start
from berth_scheduler.usecases.rollout import lost_task
from berth_scheduler.usecases.rollout.context import RolloutContext

log = get_logger(__name__)


async def revive(rt: RolloutContext, application_id: str) -> list[str]:
    """The names of the replicas of the application's live version started again (what rollouts left
    behind removed on the way, on each server looked at)."""
    async with rt.sessionmaker() as s:
        if application_id in await store.unfinished_applications(s):
            return []
        live = await store.last_succeeded(s, application_id)
        rows = await store.containers_of_application(s, application_id)
        finished = await store.finished_deployments(s, sorted({r.deployment_id for r in rows}))
    live_id = None if live is None else live.id
    left = leftovers(rows, live_id, finished)
    mine = [r for r in rows if r.deployment_id == live_id]
    started = []
    for server_id in sorted({r.server_id for r in [*mine, *left]}):
        names = {r.name for r in mine if r.server_id == server_id}
        broke = {r.name for r in mine if r.server_id == server_id and r.start_broke}
        try:
            docker = await rt.fleet.docker(server_id)
            found = await docker.list_containers({labels.APP: application_id})
            for c in found:
                if (
                    c.name not in names
                    or c.state == "running"
                    or not should_start(await docker.inspect(c.name), datetime.now(UTC))
                ):
                    continue
                rt.orphans.after_restart(server_id, docker)  # its engine restarted: what the crash left
                await lost_task.start(rt, docker, c.name, broke=c.name in broke)  # a broken start is marked
                started.append(c.name)
                log.warning(
                    "replica started again after its engine stopped it",
                    application_id=application_id,
                    deployment_id=live_id,
                    container=c.name,
                    server_id=server_id,
                )
            await remove_left(rt, docker, found, [r for r in left if r.server_id == server_id])
        except (DockerUnavailable, DockerOperationError, ServerRefusedError) as exc:
            log.info("replicas not started again", application_id=application_id, server_id=server_id, error=str(exc))
    return started


async def remove_left(
    rt: RolloutContext, docker: DockerExecutor, found: Sequence[ContainerInfo], left: Sequence[Any]
) -> None:
    """Stop and remove the containers of ``left`` (records a rollout left behind, all on the server of
    ``docker``, whose containers of the application are ``found``), then forget every one of those records
    (one whose container is not there any more explains nothing either)."""
    if not left:
        return
    there = {c.name: c for c in found}
    doomed = [r for r in left if r.name in there]
    await asyncio.gather(*(docker.stop(r.name) for r in doomed if there[r.name].state in ("running", "restarting")))
    await asyncio.gather(*(docker.remove(r.name) for r in doomed))
    async with rt.sessionmaker() as s, s.begin():
        await store.forget_containers(s, [r.name for r in left])
    for r in left:  # a record of a container never made (a start that failed first) is only forgotten
        say = log.warning if r.name in there else log.info
        say(
            "container a rollout left behind removed" if r.name in there else "record a rollout left behind forgotten",
            application_id=r.application_id,
            deployment_id=r.deployment_id,
            container=r.name,
            server_id=r.server_id,
        )
