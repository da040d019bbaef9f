"""A compose application's pinned subnet checked against each of its servers' own routes before anything is
made (``domain/host_routes.py``): a subnet the server routes (its LAN) fails the deployment with a reason
naming the subnet and the route; the route of the application's own network made before does not count."""

from __future__ import annotations

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError, server_words
from berth_scheduler.adapters.host_routes import read_host_network
from berth_scheduler.domain import compose
from berth_scheduler.domain import host_routes as dom
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.volume_dumps import helper_image


class SubnetRefused(RuntimeError):
    """The pinned subnet overlaps a route or an address of the server; the message says which."""


async def existing_network(docker: DockerExecutor, name: str) -> dict[str, object]:
    """The inspection of the network ``name`` on the server; empty when there is none."""
    try:
        return dict(await docker._call(f"inspect network {name}", docker.docker.get(f"networks/{name}")) or {})
    except DockerOperationError as exc:
        if exc.status == 404:
            return {}
        raise


async def check_server(rt: RolloutContext, application_id: str, spec: ApplicationSpec, server: str) -> None:
    """Refuse the pinned subnet of ``spec`` on ``server`` when the server uses it (nothing pinned: no read)."""
    subnet = spec.network_options.subnet if spec.private_network and spec.network_options else None
    if subnet is None:
        return
    docker = await rt.fleet.docker(server)
    await helper_image(docker, server, rt.fleet.socket, await rt.fleet.docker(LOCAL))
    own = dom.own_bridge(await existing_network(docker, compose.network_name(application_id)))
    reason = dom.overlap(subnet, server_words(server), await read_host_network(docker), own)
    if reason is not None:
        raise SubnetRefused(reason)
