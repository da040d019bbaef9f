"""The room an image needs and the room a server has, for the words of a failed transfer or pull
(``berth_common.docker.disk_full.without_room``; measured by ``adapters.data_root``).

The control plane's own data root is not measured: the scheduler may run in a container that does not see
it. Another server's is, with ``df`` over its SSH connection. Both answers are best effort (None)."""

from __future__ import annotations

from collections.abc import Sequence

from berth_common.catalogue.specs import LOCAL_SERVER
from berth_common.docker import DockerUnavailable
from berth_scheduler.adapters import data_root
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
    """The free bytes of ``server_id``'s Docker data root, or None (the control plane's: not measured)."""
    if server_id == LOCAL_SERVER:
        return None
    try:
        docker = await rt.fleet.docker(server_id)
        target = await rt.fleet.target(server_id)
    except (DockerUnavailable, ServerRefusedError):
        return None
    pool = rt.fleet.pool()

    async def run(argv: Sequence[str]) -> tuple[int, str, str]:
        return await pool.run(server_id, target, argv, data_root.TIMEOUT_S)

    return await data_root.data_root_free(docker.docker, run)
