"""``rpc.scheduler.replicas``: an application's containers as Docker sees them, with a live readiness probe,
on every server the application has containers on (a remote replica is probed through its server's SSH
connection; a server that does not answer shows none of its replicas), and on its team's Swarms the current
tasks of its Swarm services, with their nodes (``usecases/swarm_app.py``)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from berth_common import labels
from berth_common.catalogue import ReplicasReply, ReplicaStatus
from berth_common.docker import LOCAL, DockerUnavailable
from berth_scheduler.adapters import removals, store
from berth_scheduler.adapters.docker import ContainerInfo, host_port_of
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.adapters.remote_readiness import RemoteReadiness, address_of
from berth_scheduler.adapters.swarm import SwarmError
from berth_scheduler.domain import app_files, names
from berth_scheduler.domain.removal import Phase
from berth_scheduler.domain.runs import one_off
from berth_scheduler.domain.swarm_app import swarm_task
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.steps import read


async def _status(
    rt: RolloutContext, c: ContainerInfo, health_paths: dict[str, str], server: str = LOCAL
) -> ReplicaStatus:
    if server != LOCAL:
        return await _remote_status(rt, c, health_paths, server)
    info = await rt.docker.inspect(c.name) or {}
    state = (info.get("State") or {}).get("Status") or c.state
    restarts = int(info.get("RestartCount") or 0)
    service = c.labels.get(labels.SERVICE, "")
    upstream = None
    health = "unknown"
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    container_port = next((int(k.split("/")[0]) for k in ports if k.endswith("/tcp")), None)
    port = host_port_of(info, container_port) if container_port is not None else None
    if port is not None:
        upstream = names.upstream(port)
        path = health_paths.get(f"{c.labels.get(labels.DEPLOYMENT)}/{service}")
        if path is not None and state == "running":
            ok, _ = await rt.readiness.probe_http(port, path, 1.0)
            health = "ready" if ok else "unready"
    elif state != "running":
        health = "unready"
    return _reply(c, state, health, restarts, upstream, server)


def _reply(
    c: ContainerInfo, state: str, health: str, restarts: int, upstream: str | None, server: str
) -> ReplicaStatus:
    return ReplicaStatus(
        deployment_id=c.labels.get(labels.DEPLOYMENT, ""),
        service=c.labels.get(labels.SERVICE, ""),
        replica=int(c.labels.get(labels.REPLICA, "0") or 0),
        container=c.name,
        state=state,
        health=health,  # type: ignore[arg-type]
        restarts=restarts,
        upstream=upstream,
        server=server,
    )


async def _remote_status(
    rt: RolloutContext, c: ContainerInfo, health_paths: dict[str, str], server: str
) -> ReplicaStatus:
    checker = await rt.fleet.readiness(server)
    info = await checker.docker.inspect(c.name) or {}
    state = (info.get("State") or {}).get("Status") or c.state
    service = c.labels.get(labels.SERVICE, "")
    ports = (info.get("Config") or {}).get("ExposedPorts") or {}
    port = next((int(k.split("/")[0]) for k in ports if k.endswith("/tcp")), None)
    path = health_paths.get(f"{c.labels.get(labels.DEPLOYMENT)}/{service}")
    health = "unknown" if state == "running" else "unready"
    address = address_of(info)
    if port is not None and path is not None and address is not None and state == "running":
        assert isinstance(checker, RemoteReadiness)
        ok, _ = await checker.probe_remote(address, port, path, 1.0)
        health = "ready" if ok else "unready"
    upstream = names.network_upstream(c.name, port) if port is not None else None
    return _reply(c, state, health, int(info.get("RestartCount") or 0), upstream, server)


async def _found(rt: RolloutContext, application_id: str) -> list[tuple[str, ContainerInfo]]:
    """(server, container) of the application on every server it has containers on (a Swarm task is shown
    as a task; a one-off run's container and a files volume's filler are no replicas), each as its record
    says (``_as_recorded``)."""
    records = {row.name: row for row in await read(rt, store.containers_of_application, application_id)}
    servers = sorted({LOCAL, *(row.server_id for row in records.values())})
    out: list[tuple[str, ContainerInfo]] = []
    for server in servers:
        try:
            docker = await rt.fleet.docker(server)
            found = await docker.list_containers({labels.APP: application_id})
            out += [
                (server, _as_recorded(c, records.get(c.name)))
                for c in found
                if not swarm_task(c.labels) and not one_off(c.labels) and not app_files.filler(c.labels)
            ]
        except (DockerUnavailable, ServerRefusedError):
            if server == LOCAL:
                raise
    return out


def _as_recorded(c: ContainerInfo, record: Any | None) -> ContainerInfo:
    """The container with the deployment, service and replica number of its record: a container that a
    later deployment kept running (``adoption.py``) still has the labels it was made with, while its record
    names the deployment that owns it now and its replica number there. A container without a record keeps
    its labels."""
    if record is None:
        return c
    owner = {
        labels.DEPLOYMENT: record.deployment_id,
        labels.SERVICE: record.service,
        labels.REPLICA: str(record.replica),
    }
    return replace(c, labels={**c.labels, **owner})


# once a removal has taken the routes down, no deployment of the application is live any more
_NOT_LIVE = frozenset({Phase.DRAINING, Phase.STOPPING, Phase.IMAGES, Phase.REMOVED})


async def replicas_of(rt: RolloutContext, application_id: str) -> ReplicasReply:
    placed = await _found(rt, application_id)
    found = [c for _, c in placed]
    health_paths: dict[str, str] = {}
    async with rt.sessionmaker() as s:
        live = await store.last_succeeded(s, application_id)
        removal = await removals.load(s, application_id)
        if removal is not None and removal.phase in _NOT_LIVE:
            live = None
        for dep in {c.labels.get(labels.DEPLOYMENT, "") for c in found}:
            row = await store.load(s, dep)
            if row is None:
                continue
            for svc in row.spec.get("services", []):
                if svc.get("kind") == "web":
                    health_paths[f"{dep}/{svc['name']}"] = svc.get("health_path", "/")
    statuses = await asyncio.gather(*(_status(rt, c, health_paths, server) for server, c in placed))
    tasks = await _swarm_tasks(rt, application_id)
    return ReplicasReply(
        application_id=application_id,
        live_deployment_id=live.id if live is not None else None,
        replicas=[*statuses, *tasks],
    )


async def _swarm_tasks(rt: RolloutContext, application_id: str) -> list[ReplicaStatus]:
    """The application's Swarm tasks (none when a Swarm's manager does not answer)."""
    from berth_scheduler.usecases.swarm_app import swarm_replicas  # Swarm modules load only when asked

    try:
        return await swarm_replicas(rt, application_id)
    except (DockerUnavailable, ServerRefusedError, OSError, SwarmError):
        return []
