"""An application on a Swarm besides its rollouts: its image on every node before its service is created,
its services taken down when it is removed, its tasks shown by ``rpc.scheduler.replicas``. The decisions
are in ``domain/swarm_app.py``; each engine is the manager's (or a node's) through the connection factory
(``rt.fleet``: its SSH-forwarded socket).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, ReplicaStatus
from berth_common.docker import LOCAL
from berth_common.logging import get_logger
from berth_scheduler.adapters import store, tables
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import swarm_app as dom
from berth_scheduler.domain import swarm_rollout
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.swarm import engine_checked
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.delivery import image_on_server
from berth_scheduler.usecases.swarm_placement import SwarmPlace, node_targets, swarms_placed
from berth_scheduler.usecases.volume_dumps import helper_image

log = get_logger(__name__)


async def manager_of(rt: RolloutContext, place: SwarmPlace) -> SwarmEngine:
    """The Swarm's manager engine, on its server's SSH-forwarded socket."""
    return SwarmEngine(await rt.fleet.socket(place.manager_server_id))


def overlay_probe(rt: RolloutContext, place: SwarmPlace) -> OverlayProbe:
    """The overlay probe on the Swarm manager's node, which checks the tasks on nodes Berth does not reach
    (its busybox image streamed from the control plane's engine when the manager lacks it)."""

    async def socket() -> str:
        return await rt.fleet.socket(place.manager_server_id)

    async def image() -> None:
        manager = place.manager_server_id
        await helper_image(await rt.fleet.docker(manager), manager, rt.fleet.socket, await rt.fleet.docker(LOCAL))

    return OverlayProbe(socket, place.network, image)


async def image_on_nodes(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, place: SwarmPlace, manager: SwarmEngine
) -> list[str]:
    """Deliver the deployment's image (one Berth built, or in Berth's namespace) to every node Berth manages
    that is ready, at once, the way it reaches any server (a pushed build pulled by its digest, else streamed
    from the build server); a registry image is left to the nodes' pulls. The servers it is on now."""
    if not r.image or not dom.berth_delivers(r.image, r.needs_build):
        return []
    servers = dom.ready_servers(await manager.nodes(), place.nodes)
    await asyncio.gather(*(image_on_server(rt, r, spec, server) for server in servers))
    return servers


@dataclass(frozen=True)
class SwarmServices:
    """The application's services on its team's Swarms, and the servers their tasks may have run on."""

    found: tuple[tuple[SwarmEngine, str], ...]  # (manager, service name)
    servers: tuple[str, ...]  # every ready node server Berth manages of those Swarms
    application_id: str = ""
    managers: tuple[SwarmEngine, ...] = ()  # of every Swarm the application was placed on

    async def remove(self) -> None:
        for manager, name in self.found:
            await manager.remove_service(name)
            log.info("swarm service removed", service=name)
        for manager in self.managers:  # then the files they mounted (``swarm_files.py``)
            for secret in await manager.secrets(dom.app_labels(self.application_id)):
                await manager.remove_secret(str(secret.get("ID", "")))


async def swarms_of_application(rt: RolloutContext, team_id: str, application_id: str) -> list[SwarmPlace]:
    """The team's Swarms a deployment of the application was placed on (by its manager)."""
    async with rt.sessionmaker() as s:
        return await swarms_placed(s, team_id, application_id)


async def services_of(rt: RolloutContext, team_id: str, application_id: str) -> SwarmServices:
    """The application's services on the Swarms it was placed on (looked up by label each time, so a
    removal resumed after a restart finds what is left)."""
    places = await swarms_of_application(rt, team_id, application_id)
    found: list[tuple[SwarmEngine, str]] = []
    servers: set[str] = set()
    managers: list[SwarmEngine] = []
    for place in places:
        manager = await manager_of(rt, place)
        managers.append(manager)
        names = dom.service_names(await manager.services(dom.app_labels(application_id)))
        found += [(manager, n) for n in names]
        if names:
            servers.update(dom.ready_servers(await manager.nodes(), place.nodes))
    return SwarmServices(tuple(found), tuple(sorted(servers)), application_id, tuple(managers))


async def _team_of(rt: RolloutContext, application_id: str) -> str | None:
    d = tables.deployments
    async with rt.sessionmaker() as s:
        q = sa.select(d.c.team_id).where(d.c.application_id == application_id).limit(1)
        return (await s.execute(q)).scalar_one_or_none()


async def _web_of(rt: RolloutContext, services: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """deployment/service -> (port, health path) of the web services the Swarm services run."""
    out: dict[str, tuple[int, str]] = {}
    async with rt.sessionmaker() as s:
        for dep in sorted({str(((x.get("Spec") or {}).get("Labels") or {}).get(labels.DEPLOYMENT)) for x in services}):
            row = await store.load(s, dep)
            for svc in row.spec.get("services", []) if row is not None else []:
                if svc.get("kind") == "web" and svc.get("port"):
                    out[f"{dep}/{svc['name']}"] = (int(svc["port"]), str(svc.get("health_path") or "/"))
    return out


async def swarm_replicas(rt: RolloutContext, application_id: str) -> list[ReplicaStatus]:
    """Every current task of the application's Swarm services: its node, state and readiness (checked now
    on its node over SSH)."""
    team = await _team_of(rt, application_id)
    places = [] if team is None else await swarms_of_application(rt, team, application_id)
    if not places:
        return []
    async with rt.sessionmaker() as s:
        targets = {p.swarm_id: await node_targets(s, p) for p in places}
    out: list[ReplicaStatus] = []
    for place in places:
        manager = await manager_of(rt, place)
        services = await manager.services(dom.app_labels(application_id))
        if not services:
            continue
        probe = NodeProbe(
            rt.fleet.pool(),
            lambda p=place: targets[p.swarm_id],  # type: ignore[misc]
            overlay=overlay_probe(rt, place),
        )
        nodes = dict(place.nodes)
        web = await _web_of(rt, services)
        try:
            for service in sorted(services, key=lambda x: str((x.get("Spec") or {}).get("Name"))):
                out += await _tasks_of(manager, probe, place, service, nodes, web)
        finally:
            await probe.aclose()
    return out


async def _tasks_of(
    manager: SwarmEngine,
    probe: NodeProbe,
    place: SwarmPlace,
    service: dict[str, Any],
    nodes: dict[str, str | None],
    web: dict[str, tuple[int, str]],
) -> Sequence[ReplicaStatus]:
    spec = service.get("Spec") or {}
    svc_labels = spec.get("Labels") or {}
    history = await manager.tasks(str(spec.get("Name")))
    running = {t.task_id: t for t in swarm_rollout.running(history, place.network)}
    port, path = web.get(f"{svc_labels.get(labels.DEPLOYMENT, '')}/{svc_labels.get(labels.SERVICE, '')}", (None, None))
    current = dom.current_tasks(history)

    async def check(task: dict[str, Any]) -> bool | None:
        found = running.get(str(task.get("ID")))
        if found is None or port is None or path is None:
            return None
        if not probe.reaches(found) and engine_checked(spec):  # a node Berth does not reach: the engine checks
            return True
        if not probe.reaches(found) and not probe.reaches_over_overlay(found):
            return None
        return await probe.ready(found, port, path)

    checks = await asyncio.gather(*(check(t) for t in current))
    return [
        ReplicaStatus(
            **dom.task_view(
                service,
                task,
                history,
                nodes,
                ok,
                running[str(task.get("ID"))].address if str(task.get("ID")) in running else None,
                port,
            )
        )
        for task, ok in zip(current, checks, strict=True)
    ]
