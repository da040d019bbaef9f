"""starting, for a deployment whose services are placed on a Swarm (``usecases/swarm_placement.py``): each
service's new version (web or worker) is rolled out as a Swarm service (``usecases/swarm_rollout.py``: started, its tasks
ready, its route switched on the manager's Traefik, the old version drained and removed), then the machine
moves on with an empty route plan (the routes are switched already) and no container of its own, so routing,
draining and stopping the old containers pass through to ``succeeded``. Any other deployment starts as
always (``pull_then_start``). Running it again after a restart gives the same result: every step of the
Swarm rollout looks before it acts.

Before a service is created its image is made available to every node that may run a task: an image Berth
built (or in Berth's namespace) is delivered to each ready node Berth manages, from the control plane's
engine over the node's SSH-forwarded socket; a registry image is pulled by the nodes themselves, with the
application's credentials for its registry carried by the service (``X-Registry-Auth``). The files a
service mounts are Swarm secrets mounted at their paths (``usecases/swarm_files.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from berth_common import fleet
from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_scheduler.adapters import tables
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.adapters.swarm_probe import NodeProbe
from berth_scheduler.domain import machine, names, route_tls
from berth_scheduler.domain.containers import ContainerSpec, container_spec
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import RoutePlan
from berth_scheduler.domain.runs import job_service as job_of
from berth_scheduler.domain.swarm import refusal
from berth_scheduler.domain.swarm_app import service_auth
from berth_scheduler.domain.swarm_rollout import SwarmVersion, pinned_node
from berth_scheduler.usecases import swarm_files
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.pre_deploy import remove_job, run_job
from berth_scheduler.usecases.rollout.pull import pull_then_start
from berth_scheduler.usecases.rollout.steps import Waiter, transit
from berth_scheduler.usecases.swarm_app import image_on_nodes, overlay_probe
from berth_scheduler.usecases.swarm_placement import SwarmPlace, node_targets, swarm_of
from berth_scheduler.usecases.swarm_rollout import SwarmRollout, SwarmRolloutFailed
from berth_scheduler.usecases.swarm_routes import BusRoutes
from berth_scheduler.usecases.swarms import Swarms


def task_of(r: Rollout, spec: ApplicationSpec, svc: WebService | WorkerService) -> ContainerSpec:
    """The container one task of ``svc`` is made like (``domain/swarm.py``: ``service_body``)."""
    # the host port is a placeholder: a Swarm service publishes nothing (``service_body`` drops bindings)
    port = svc.port if isinstance(svc, WebService) else None
    return container_spec(r.application_id, r.deployment_id, spec, svc, 1, r.run_image, port, r.team_id)


async def places_of(rt: RolloutContext, r: Rollout, spec: ApplicationSpec) -> dict[str, SwarmPlace | None]:
    """The Swarm each service runs on (None: none); no query when no service is placed on one server."""
    if not any(len(svc.servers) == 1 for svc in spec.services):
        return {svc.name: None for svc in spec.services}
    async with rt.sessionmaker() as s:
        return {svc.name: await swarm_of(s, r.team_id, list(svc.servers)) for svc in spec.services}


@dataclass
class SwarmStarting:
    swarms: Swarms

    async def __call__(self, rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
        spec = rt.sealer.open(row.spec)
        places = await places_of(rt, r, spec)
        if not any(places.values()):
            await pull_then_start(rt, r, row, wait)
            return
        for svc in spec.services:  # a key a Swarm service has no place for is refused, never dropped
            why = refusal(svc.name, task_of(r, spec, svc)) if places[svc.name] is not None else None
            if why is not None:
                raise SwarmRolloutFailed(why)
        if spec.private_network:
            raise SwarmRolloutFailed(
                "a compose application runs on servers, not on a Swarm yet: place its services on servers"
            )
        for svc in spec.services:
            if places[svc.name] is None:
                raise SwarmRolloutFailed(
                    f"service {svc.name}: on a Swarm, every service of the application is placed on the Swarm's manager"
                )
        job = spec.pre_deploy
        if job is not None:  # on the manager, on the overlay network, before any new task
            target = job_of(spec, job.service)
            place = places.get(target.name) if target is not None else None
            after = await run_job(rt, r, row, network=place.network if place is not None else None)
            if after is None:
                return  # the deployment failed with the job's reason; the live version keeps serving
            r = after
        for svc in spec.services:
            place = places[svc.name]
            assert place is not None
            await self._roll_out(rt, r, spec, svc, place)
        await transit(rt, r.deployment_id, machine.ContainersStarted(0))
        await transit(rt, r.deployment_id, machine.ReplicasReady(RoutePlan((), ())))
        if job is not None:  # the deployment left starting: the job is never looked at again
            await remove_job(rt, r.deployment_id, sorted({p.manager_server_id for p in places.values() if p}))

    async def _roll_out(
        self, rt: RolloutContext, r: Rollout, spec: ApplicationSpec, svc: WebService | WorkerService, place: SwarmPlace
    ) -> None:
        rollout, version = await self.rollout_of(rt, r, spec, svc, place)
        delivered = await image_on_nodes(rt, r, spec, place, rollout.manager)
        image_id = await rollout.manager.image_id(version.replica.body["Image"]) if delivered else None
        secrets = await swarm_files.mounted(rollout.manager, r.application_id, r.team_id, spec, svc)
        version = dataclasses.replace(version, secrets=secrets, image_id=image_id)

        async def stopped(count: int) -> None:  # strategy recreate: the old tasks stopped first
            await transit(rt, r.deployment_id, machine.OldStoppedForRecreate((svc.name,), count, 0))

        try:
            await rollout.run(version, stopped)
        finally:
            if isinstance(rollout.probe, NodeProbe):
                await rollout.probe.aclose()  # the overlay probe's relay, when it was used
        await swarm_files.prune(rollout.manager, r.application_id)

    async def rollout_of(
        self,
        rt: RolloutContext,
        r: Rollout,
        spec: ApplicationSpec,
        svc: WebService | WorkerService,
        place: SwarmPlace,
        overlay: OverlayProbe | None = None,
    ) -> tuple[SwarmRollout, SwarmVersion]:
        """The Swarm rollout of ``svc``'s version of deployment ``r``, and that version (its tasks on nodes
        Berth does not reach checked through ``overlay``, or an overlay probe of its own)."""
        async with rt.sessionmaker() as s:
            manager = await fleet.server_of(s, tables.servers, place.manager_server_id)
            targets = await node_targets(s, place)
        if manager is None:
            raise SwarmRolloutFailed(f"the Swarm's manager {place.manager_server_id} is not in the directory")
        engine = await self.swarms.engine(manager)
        replica = task_of(r, spec, svc)
        hosts = tuple(sorted({h.lower() for h in svc.hosts})) if isinstance(svc, WebService) else ()
        auth = service_auth(r.image or "", spec.source)
        route_id = names.route_id(r.application_id, svc.name)
        pinned = pinned_node(svc.strategy, len(svc.volumes), place.nodes, place.manager_server_id)
        version = SwarmVersion(r.application_id, replica, svc.replicas, route_id, hosts, place.network, auth, pinned)
        tls = route_tls.of_spec(spec, r.team_id, r.application_id)
        routes = BusRoutes(rt.units, rt.sessionmaker, r.deployment_id, r.application_id, r.timeouts.route_s, tls=tls)

        async def task_logs(server_id: str, container: str, lines: int) -> str:
            return await (await rt.fleet.docker(server_id)).logs(container, lines)

        overlay = overlay or overlay_probe(rt, place)
        probe = NodeProbe(self.swarms.servers.pool, lambda: targets, logs=task_logs, overlay=overlay)
        rollout = SwarmRollout(
            engine,
            place.manager_server_id,
            routes,
            probe,
            ready_timeout_s=r.timeouts.readiness_s,
            drain_s=r.timeouts.drain_grace_s,
        )
        return rollout, version
