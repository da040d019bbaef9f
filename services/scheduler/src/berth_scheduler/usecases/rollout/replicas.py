"""``rpc.scheduler.replicas``: an application's containers as Docker sees them, with a live readiness probe."""

from __future__ import annotations

import asyncio

from berth_common import labels
from berth_common.catalogue import ReplicasReply, ReplicaStatus
from berth_scheduler.adapters import removals, store
from berth_scheduler.adapters.docker import ContainerInfo, host_port_of
from berth_scheduler.domain import names
from berth_scheduler.domain.removal import Phase
from berth_scheduler.usecases.rollout.context import RolloutContext


async def _status(rt: RolloutContext, c: ContainerInfo, health_paths: dict[str, str]) -> ReplicaStatus:
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
    return ReplicaStatus(
        deployment_id=c.labels.get(labels.DEPLOYMENT, ""),
        service=service,
        replica=int(c.labels.get(labels.REPLICA, "0") or 0),
        container=c.name,
        state=state,
        health=health,  # type: ignore[arg-type]
        restarts=restarts,
        upstream=upstream,
    )


# once a removal has taken the routes down, no deployment of the application is live any more
_NOT_LIVE = frozenset({Phase.DRAINING, Phase.STOPPING, Phase.IMAGES, Phase.REMOVED})


async def replicas_of(rt: RolloutContext, application_id: str) -> ReplicasReply:
    found = await rt.docker.list_containers({labels.APP: application_id})
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
    statuses = await asyncio.gather(*(_status(rt, c, health_paths) for c in found))
    return ReplicasReply(
        application_id=application_id,
        live_deployment_id=live.id if live is not None else None,
        replicas=list(statuses),
    )
