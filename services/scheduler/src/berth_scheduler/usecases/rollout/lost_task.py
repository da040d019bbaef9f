"""Containers whose start an engine's crash interrupted (``domain/lost_tasks.py``): the engine may still hold
their task, and a process of it may run on with the address the engine gives the next container.

A replica whose start the engine refuses for that reason has the task's processes ended, is removed, and
the caller makes it again (:func:`clear_lost_task`). A start call that breaks with the engine is recorded
on the container's record (:func:`start`), so that a container removed without being started again (a
failed deployment's undo, an application's removal: :func:`remove_containers`) has the helper end what may
still run of it first, whichever scheduler removes it; so does one whose removal the engine refuses for
that reason."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import ContainerInfo, DockerExecutor, DockerOperationError
from berth_scheduler.adapters.lost_tasks import end_lost_task
from berth_scheduler.domain import lost_tasks as dom
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.volume_dumps import helper_image

log = get_logger(__name__)


def lost(exc: DockerOperationError) -> bool:
    """Whether the engine refused a start (or a removal) because it lost the container's task."""
    return dom.is_lost(str(exc))


async def _end(rt: RolloutContext, server_id: str, docker: DockerExecutor, container_id: str) -> list[int]:
    """The helper's run on the server (its image put there first when missing): the processes it ended."""
    await helper_image(docker, server_id, rt.fleet.socket, await rt.fleet.docker(LOCAL))
    return await end_lost_task(docker, container_id)


async def start(rt: RolloutContext, docker: DockerExecutor, name: str) -> None:
    """Start the recorded container ``name``; a start call that breaks with the engine (DockerUnavailable:
    the engine went away or did not answer) is recorded on its record before it is raised."""
    try:
        await docker.start(name)
    except DockerUnavailable:
        try:
            async with rt.sessionmaker() as s, s.begin():
                await store.note_start_broke(s, name)
        except Exception as exc:  # the database away too: the engine's refusal, met later, still tells
            log.warning("a broken start not recorded", container=name, error=str(exc))
        raise


async def clear_lost_task(rt: RolloutContext, server_id: str, docker: DockerExecutor, name: str) -> None:
    """End what still runs of the container ``name``'s lost task and remove the container, so that it can be
    made again (the engine keeps refusing to start this one)."""
    info = await docker.inspect(name)
    if info is not None:
        ended = await _end(rt, server_id, docker, str(info["Id"]))
        log.warning(
            "the engine lost the task of a replica: its processes ended, the replica made again",
            container=name,
            server_id=server_id,
            processes=ended,
        )
    await docker.remove(name)


async def remove_containers(
    rt: RolloutContext, server_id: str, docker: DockerExecutor, found: Sequence[ContainerInfo]
) -> None:
    """Remove ``found`` (the engine kills what it knows runs). The helper first ends the processes of each
    the data says may have a lost task (``domain/lost_tasks.suspicion``: its start call broke, read from
    the records of those not running), and of each whose removal the engine refuses because it still
    holds the task (then removed again). Each helper run is logged with what it ended."""
    idle = [c.name for c in found if c.state != "running"]
    broke: set[str] = set()
    if idle:
        async with rt.sessionmaker() as s:
            broke = await store.broken_starts(s, idle)
    removing = [dom.Removing(c.name, c.id, c.state, start_broke=c.name in broke) for c in found]

    async def end(c: dom.Removing, why: str) -> None:
        ended = await _end(rt, server_id, docker, c.container_id)
        log.warning(
            "a removed container's start was interrupted by its engine: what still ran of it ended",
            container=c.name,
            container_id=c.container_id,
            server_id=server_id,
            reason=why,
            processes=ended,
        )

    for c, why in dom.needing_helper(removing):  # one at a time: the first run puts the helper's image there
        await end(c, why)

    async def remove(c: dom.Removing) -> None:
        try:
            await docker.remove(c.name)
        except DockerOperationError as exc:
            if not lost(exc):
                raise
            await end(c, "the engine refused its removal: it still holds its task")
            await docker.remove(c.name)

    await asyncio.gather(*(remove(c) for c in removing))
