"""``rpc.scheduler.volumes``: an application's named volumes on every server it runs or ran on, with the size
each engine reports (``GET /system/df``), through the server's connection (``rt.fleet``). A server that
does not answer is named in ``unreachable`` instead of failing the answer."""

from __future__ import annotations

from berth_common.catalogue import VolumesQuery, VolumesReply, VolumeUsage
from berth_common.docker import LOCAL, DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import removals, store
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain import volumes
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.steps import read

log = get_logger(__name__)


async def volumes_of(rt: RolloutContext, query: VolumesQuery) -> VolumesReply:
    app = query.application_id
    specs = await read(rt, removals.deployed_specs, app)
    placed = await read(rt, store.servers_of_application, app)
    found: list[VolumeUsage] = []
    unreachable: list[str] = []
    for server in dict.fromkeys([LOCAL, *placed, *volumes.servers_in_specs(specs)]):
        try:
            docker = await rt.fleet.docker(server)
            found += volumes.usage(server, await docker.volume_usage(), app, query.team_id)
        except (DockerUnavailable, ServerRefusedError) as exc:
            log.warning("volumes: server skipped, it does not answer", server_id=server, error=str(exc))
            unreachable.append(server)
    return VolumesReply(application_id=app, volumes=found, unreachable=unreachable)
