"""The room an image needs and the room a server has, for the words of a failed transfer or pull
(``berth_common.docker.disk_full.without_room``; measured by ``berth_common.docker.data_root``).

Another server's data root is measured with ``df`` over its SSH connection; the control plane's own through
its engine (a short-lived helper container that mounts the data root read-only), since the scheduler may run
in a container that does not see it. Both answers are best effort (None)."""

from __future__ import annotations

from collections.abc import Sequence

from berth_common.catalogue.specs import LOCAL_SERVER
from berth_common.docker import DockerUnavailable, data_root
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.usecases.rollout.context import RolloutContext


async def image_size_on(rt: RolloutContext, server_id: str, image: str) -> int | None:
    """The image's size on ``server_id``'s engine (which has it), or None."""
    try:
        docker = await rt.fleet.docker(server_id)
    except (DockerUnavailable, ServerRefusedError):
        return None
    return await data_root.image_bytes(docker.docker, image)


async def free_on(rt: RolloutContext, server_id: str) -> int | None:
    """The free bytes of ``server_id``'s Docker data root, or None."""
    try:
        docker = await rt.fleet.docker(server_id)
        if server_id == LOCAL_SERVER:
            return await data_root.free_bytes(docker.docker)
        target = await rt.fleet.target(server_id)
    except (DockerUnavailable, ServerRefusedError):
        return None
    pool = rt.fleet.pool()

    async def run(argv: Sequence[str]) -> tuple[int, str, str]:
        return await pool.run(server_id, target, argv, data_root.TIMEOUT_S)

    return await data_root.free_bytes(docker.docker, run)
