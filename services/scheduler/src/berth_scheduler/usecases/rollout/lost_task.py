"""A replica whose start the engine refuses because it still holds the container's task from a start a crash
interrupted (``domain/lost_tasks.py``): the task's processes are ended (they would keep the address the
engine gives the next container), the container is removed, and the caller makes it again."""

from __future__ import annotations

from berth_common.logging import get_logger
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.lost_tasks import end_lost_task
from berth_scheduler.domain import lost_tasks as dom
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.volume_dumps import helper_image

log = get_logger(__name__)


def lost(exc: DockerOperationError) -> bool:
    """Whether the engine refused a start because it lost the container's task."""
    return dom.is_lost(str(exc))


async def clear_lost_task(rt: RolloutContext, server_id: str, docker: DockerExecutor, name: str) -> None:
    """End what still runs of the container ``name``'s lost task and remove the container, so that it can be
    made again (the engine keeps refusing to start this one)."""
    info = await docker.inspect(name)
    if info is not None:
        await helper_image(docker, server_id, rt.fleet.socket, await rt.fleet.docker(LOCAL))
        ended = await end_lost_task(docker, str(info["Id"]))
        log.warning(
            "the engine lost the task of a replica: its processes ended, the replica made again",
            container=name,
            server_id=server_id,
            processes=ended,
        )
    await docker.remove(name)
