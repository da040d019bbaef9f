"""``strategy: recreate``: the old replicas of a service leave the routes and stop before the new ones start.

A service whose volume only one container may write (``single_writer``) deploys this way: its routes are
removed first (proxy-sync confirms the hosts are gone, step ``RECREATE_STEP`` of the deployment's route
commands), then its running replicas of other deployments are stopped (kept, not removed: the deployment's
end removes them as every old container, and a failed deployment starts them again), and the deployment's
progress says so (``expected downtime``). The new replicas then start, are checked and routed as in a
rolling deployment. Done from the persisted state: repeated after a restart, it sends nothing twice.

A service whose volume data moves to another server (``volume_move.py``: a drained server, a placement
change) deploys this way too, whatever its strategy: its old replicas stop before the copy.

A stateful compose service the deployment keeps running (``adoption.py``) is neither stopped nor started.

Undo (the deployment failed or was cancelled after the old replicas stopped): the old replicas are started
again and their routes put back as they were (step ``RECREATE_RESTORE_STEP``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, WebService
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store, volume_moves
from berth_scheduler.domain import machine, names, port_routes, volumes
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.route_tls import RouteTls
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout.adoption import adopted
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.routing import resend_pending, send_step, tls_of, wait_step
from berth_scheduler.usecases.rollout.steps import Waiter, read, servers_of, transit

log = get_logger(__name__)
RECREATE_STEP = -2
RECREATE_RESTORE_STEP = -3


class RecreateFailedError(Exception):
    """The old replicas' routes could not be removed (the reason is for a person)."""


async def _route_step(
    rt: RolloutContext, r: Rollout, step: int, ops: tuple[RouteOp, ...], wait: Waiter, tls: RouteTls | None = None
) -> str | None:
    """Send ``ops`` as ``step`` once (again after a restart: the pending ones) and wait for proxy-sync; the
    failure, or None when confirmed. ``tls``: the HTTPS the routes put back carry."""
    if not await read(rt, store.ops_of, r.deployment_id, step):
        if not ops:
            return None
        await send_step(rt, r, step, ops, tls)
    elif (r.deployment_id, step) not in rt.sent_steps:
        await resend_pending(rt, r, step, tls)
        rt.sent_steps.add((r.deployment_id, step))
    done, failure = await wait_step(rt, r, step, rt.clock() + r.timeouts.route_s, wait)
    if done:
        return None
    return failure or f"the routes were not confirmed within {r.timeouts.route_s:g}s (is proxy-sync running?)"


async def _old_replicas(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, services: list[str]) -> list[Any]:
    """(server, container) of the services' replicas of other deployments, on every server of the app."""
    found = []
    for server in await servers_of(rt, r.application_id, spec):
        try:
            docker = await rt.fleet.docker(server)
            for c in await docker.list_containers({labels.APP: r.application_id}):
                if c.labels.get(labels.SERVICE) in services and c.labels.get(labels.DEPLOYMENT) != r.deployment_id:
                    found.append((server, docker, c))
        except DockerUnavailable as exc:
            log.warning("server skipped: it does not answer", server_id=server, error=str(exc))
    return found


async def _moving(rt: RolloutContext, r: Rollout, spec: ApplicationSpec) -> list[str]:
    """The services whose volume data this deployment moves (recorded by ``volume_move.plan``)."""
    if not any(svc.volumes for svc in spec.services):
        return []
    return [str(s) for row in await read(rt, volume_moves.moves_of, r.deployment_id) for s in row.services]


async def _services(rt: RolloutContext, r: Rollout, spec: ApplicationSpec) -> list[str]:
    """The services recreated: ``strategy: recreate`` and those whose volume data moves to another server
    (``volume_move.py``), but for the ones kept running."""
    kept = await read(rt, adopted, rt.sealer, r, spec)  # kept running: not recreated (``adoption.py``)
    moving = await _moving(rt, r, spec)
    return [s for s in dict.fromkeys([*volumes.recreated_services(spec), *moving]) if s not in kept]


async def stop_for_recreate(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, wait: Waiter) -> None:
    """Before the new replicas start: the recreate services' routes removed, their old replicas stopped.
    Raises :class:`RecreateFailedError` when a route removal was not confirmed (nothing was stopped)."""
    services = await _services(rt, r, spec)
    moving = await _moving(rt, r, spec)
    if not services:
        return
    web = [s for s in spec.services if isinstance(s, WebService) and s.name in services]
    ids = {names.route_id(r.application_id, s) for s in services}
    ids |= {rid for s in web for rid in port_routes.route_ids(r.application_id, s)}
    before = [t for t in await read(rt, store.routes_of, r.application_id) if t.route_id in ids and t.upstreams]
    ops = tuple(RouteOp("remove", t.route_id, t.hosts, t.upstreams, t.server_id) for t in before)
    fresh = bool(ops) and not await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP)
    failure = await _route_step(rt, r, RECREATE_STEP, ops, wait)
    if failure is not None:
        raise RecreateFailedError(f"strategy recreate: {failure}")
    running = [(d, c) for _, d, c in await _old_replicas(rt, r, spec, services) if c.state in ("running", "restarting")]
    await asyncio.gather(*(docker.stop(c.name) for docker, c in running))
    if running or fresh:
        removed = len(await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP))
        why = "volume data moves to another server" if moving else "strategy recreate"
        stopped = machine.OldStoppedForRecreate(tuple(services), len(running), removed, why)
        await transit(rt, r.deployment_id, stopped)


async def undo_recreate(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, wait: Waiter) -> str:
    """A failed recreate: the old replicas started again and their routes put back; a note for the reason
    ("" when the deployment stopped nothing)."""
    removed = await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP)
    if not removed and not await _moving(rt, r, spec):  # nothing was stopped
        return ""
    services = await _services(rt, r, spec)
    old = [(d, c) for _, d, c in await _old_replicas(rt, r, spec, services) if c.state not in ("running", "restarting")]
    await asyncio.gather(*(docker.start(c.name) for docker, c in old))
    ops = tuple(RouteOp("apply", o.route_id, tuple(o.hosts), tuple(o.upstreams), o.server_id) for o in removed)
    tls = await tls_of(rt, r.previous_deployment_id, r.team_id, r.application_id)  # the routes as they were
    failure = await _route_step(rt, r, RECREATE_RESTORE_STEP, ops, wait, tls)
    if failure is not None:
        return f"{len(old)} old replica(s) started again, their routes NOT confirmed restored ({failure})"
    return f"{len(old)} old replica(s) started again" + (" and routed" if ops else "")
