"""Containers whose start an engine's crash interrupted (``domain/lost_tasks.py``): the engine may still hold
their task, and a process of it may run on with the address the engine gives the next container.

A replica or pre-deploy job whose start the engine refuses for that reason has the task's processes ended, is
removed, and the caller makes it again (:func:`clear_lost_task`). A start call that breaks with the engine is marked on the
container's record (:func:`start`), or for a pre-deploy job's container, which has none, on its deployment's
(:func:`start_job`), so that a container removed without being started again (a failed deployment's undo, an
application's removal, the job's container once its deployment left ``starting``: :func:`remove_containers`,
:func:`remove`) has the helper end what may still run of it first, whichever scheduler removes it; so does
one whose removal the engine refuses for that reason.

The mark says what the engine's crash may have left of the container it names; it goes when that container
is removed and made again (:func:`clear_lost_task`) and when a start of it is carried out (the engine then
knows its task: :func:`started`), read with the record its caller reads anyway: a start of an unmarked
container writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import ContainerInfo, DockerExecutor, DockerOperationError
from berth_scheduler.adapters.lost_tasks import end_lost_task
from berth_scheduler.domain import lost_tasks as dom
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.domain.runs import JOB_LABEL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.volume_dumps import helper_image

log = get_logger(__name__)
Mark = Callable[[AsyncSession, bool], Awaitable[None]]  # writes whether a container's start broke


def lost(exc: DockerOperationError) -> bool:
    """Whether the engine refused a start (or a removal) because it lost the container's task."""
    return dom.is_lost(str(exc))


async def _end(rt: RolloutContext, server_id: str, docker: DockerExecutor, container_id: str) -> list[int]:
    """The helper's run on the server (its image put there first when missing): the processes it ended."""
    await helper_image(docker, server_id, rt.fleet.socket, await rt.fleet.docker(LOCAL))
    return await end_lost_task(docker, container_id)


def _replica(name: str) -> Mark:
    return lambda s, broke: store.note_start_broke(s, name, broke)


def _job(deployment_id: str) -> Mark:
    return lambda s, broke: store.note_job_start_broke(s, deployment_id, broke)


async def _note(rt: RolloutContext, mark: Mark, broke: bool, name: str) -> None:
    """Write the mark; a database away too leaves it as it was (logged): a start the engine lost is still
    told by its refusal met later, and a stale mark costs one needless helper run."""
    try:
        async with rt.sessionmaker() as s, s.begin():
            await mark(s, broke)
    except Exception as exc:
        log.warning("a broken start's mark not written", container=name, broke=broke, error=str(exc))


async def _start(rt: RolloutContext, docker: DockerExecutor, name: str, mark: Mark, broke: bool) -> None:
    try:
        await docker.start(name)
    except DockerUnavailable:
        await _note(rt, mark, True, name)
        raise
    if broke:  # carried out: the engine knows its task now
        await _note(rt, mark, False, name)


async def start(rt: RolloutContext, docker: DockerExecutor, name: str, *, broke: bool = False) -> None:
    """Start the recorded container ``name``; a start call that breaks with the engine (DockerUnavailable:
    the engine went away or did not answer) is marked on its record before it is raised. ``broke``: its
    record has the mark (of an earlier start), which a start carried out clears."""
    await _start(rt, docker, name, _replica(name), broke)


async def started(rt: RolloutContext, name: str, broke: bool) -> None:
    """The engine runs the recorded container ``name`` (found running): the mark of an earlier start of it
    (``broke``) is stale and cleared; nothing is written when there is none."""
    if broke:
        await _note(rt, _replica(name), False, name)


async def start_job(
    rt: RolloutContext, docker: DockerExecutor, deployment_id: str, name: str, *, broke: bool = False
) -> None:
    """Start the deployment's pre-deploy job's container ``name`` as :func:`start` a replica, the mark on the
    deployment's record (``deployments.job_start_broke``; ``broke``: read with it)."""
    await _start(rt, docker, name, _job(deployment_id), broke)


async def clear_lost_task(
    rt: RolloutContext, server_id: str, docker: DockerExecutor, name: str, *, job_of: str | None = None
) -> None:
    """End what still runs of the container ``name``'s lost task and remove the container, so that it can be
    made again (the engine keeps refusing to start this one); the mark of its broken start goes with it
    (the container made again under its name has had no start). ``job_of``: ``name`` is the pre-deploy job's
    container of that deployment, whose record holds the mark."""
    info = await docker.inspect(name)
    if info is not None:
        ended = await _end(rt, server_id, docker, str(info["Id"]))
        log.warning(
            "the engine lost the task of a container: its processes ended, the container made again",
            container=name,
            server_id=server_id,
            processes=ended,
        )
    await docker.remove(name)
    await _note(rt, _job(job_of) if job_of is not None else _replica(name), False, name)


async def remove_containers(
    rt: RolloutContext, server_id: str, docker: DockerExecutor, found: Sequence[ContainerInfo]
) -> None:
    """Remove ``found`` (:func:`remove`), the marks of broken starts read from the records of those not
    running (a pre-deploy job's container's from its deployment's record, by its label)."""
    idle = [c for c in found if c.state != "running"]
    broke: set[str] = set()
    if idle:
        jobs = {c.labels[JOB_LABEL]: c.name for c in idle if c.labels.get(JOB_LABEL)}
        async with rt.sessionmaker() as s:
            broke = await store.broken_starts(s, [c.name for c in idle])
            broke |= {jobs[d] for d in await store.broken_jobs(s, list(jobs))}
    await remove(rt, server_id, docker, [dom.Removing(c.name, c.id, c.state, c.name in broke) for c in found])


async def remove(rt: RolloutContext, server_id: str, docker: DockerExecutor, removing: Sequence[dom.Removing]) -> None:
    """Remove ``removing`` (the engine kills what it knows runs). The helper first ends the processes of each
    the data says may have a lost task (``domain/lost_tasks.suspicion``: its start call broke and the engine
    does not report it running), and of each whose removal the engine refuses because it still holds the
    task (then removed again). Each helper run is logged with what it ended."""

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

    async def remove_one(c: dom.Removing) -> None:
        try:
            await docker.remove(c.name)
        except DockerOperationError as exc:
            if not lost(exc):
                raise
            await end(c, "the engine refused its removal: it still holds its task")
            await docker.remove(c.name)

    await asyncio.gather(*(remove_one(c) for c in removing))
