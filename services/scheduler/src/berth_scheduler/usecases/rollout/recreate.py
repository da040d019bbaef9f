"""``strategy: recreate``: the old replicas of a service leave the routes and stop before the new ones start.

A service whose volume only one container may write (``single_writer``) deploys this way: its routes are
removed first (proxy-sync confirms the hosts are gone, step ``RECREATE_STEP`` of the deployment's route
commands), then its running replicas of other deployments are stopped (kept, not removed: the deployment's
end removes them as every old container, and a failed deployment starts them again), and the deployment's
progress says so (``expected downtime``). The new replicas then start, are checked and routed as in a
rolling deployment. Done from the persisted state: repeated after a restart, it sends nothing twice.

A service whose volume data moves to another server (``volume_move.py``: a drained server, a placement
change) deploys this way too, whatever its strategy, on the servers the data leaves only: its old replicas
there leave their server's route and stop before the copy; its replicas on the servers it keeps go on serving
and are replaced as in a rolling deployment (``domain.volume_moves.stopped_on``).

A replica the deployment keeps running (``adoption.py``) is neither stopped nor started.

Undo (the deployment failed or was cancelled after the old replicas stopped): the old replicas are started
again and their routes put back as they were (step ``RECREATE_RESTORE_STEP``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, WebService
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store, volume_moves
from berth_scheduler.domain import machine, names, placement, port_routes, volumes
from berth_scheduler.domain import volume_moves as dom
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.route_tls import RouteTls
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout import lost_task
from berth_scheduler.usecases.rollout.adoption import adopted
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.routing import reachable, resend_pending, send_step, tls_of, wait_step
from berth_scheduler.usecases.rollout.steps import Waiter, read, servers_of, transit

log = get_logger(__name__)
RECREATE_STEP = -2
RECREATE_RESTORE_STEP = -3
Scope = dict[str, frozenset[str] | None]  # service -> the servers its old replicas stop on (None: all)


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


async def _old_replicas(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, scope: Scope, skip: Collection[str] = ()
) -> list[Any]:
    """(server, engine, container) of the replicas of other deployments that ``scope`` stops, on every
    server of the application but ``skip`` (a server that does not answer is skipped)."""
    found = []
    for server in [s for s in await servers_of(rt, r.application_id, spec) if s not in skip]:
        try:
            docker = await rt.fleet.docker(server)
            for c in await docker.list_containers({labels.APP: r.application_id}):
                service = c.labels.get(labels.SERVICE, "")
                if dom.stops(scope, service, server) and c.labels.get(labels.DEPLOYMENT) != r.deployment_id:
                    found.append((server, docker, c))
        except DockerUnavailable as exc:
            log.warning("server skipped: it does not answer", server_id=server, error=str(exc))
    return found


async def _moving(rt: RolloutContext, r: Rollout, spec: ApplicationSpec) -> list[dom.Move]:
    """The volume data this deployment moves (recorded by ``volume_move.plan``)."""
    if not any(svc.volumes for svc in spec.services):
        return []
    rows = await read(rt, volume_moves.moves_of, r.deployment_id)
    return [dom.Move(row.volume, row.source, row.target, tuple(row.services)) for row in rows]


async def _scope(rt: RolloutContext, r: Rollout, spec: ApplicationSpec) -> Scope:
    """The services recreated and where (``domain.volume_moves.stopped_on``): ``strategy: recreate``
    everywhere, and those whose volume data moves to another server on the servers it leaves; but for the
    replicas kept running (``adoption.py``): a service kept whole is not recreated, one kept in part only on
    the servers where none is kept."""
    kept = await read(rt, adopted, rt.sealer, r, spec)
    scope = dom.stopped_on(await _moving(rt, r, spec), volumes.recreated_services(spec))
    out: Scope = {}
    for svc, where in scope.items():
        rows = kept.get(svc, [])
        if not rows:
            out[svc] = where
            continue
        if len(rows) == sum(1 for slot in placement.slots(spec) if slot.service.name == svc):
            continue  # kept whole
        everywhere = frozenset(await servers_of(rt, r.application_id, spec)) if where is None else where
        rest = everywhere - {row.server_id for row in rows}
        if rest:
            out[svc] = rest
    return out


def _routed(r: Rollout, scope: Scope, routes: list[Any], spec: ApplicationSpec) -> list[Any]:
    """The application's routes (one per server) that lead to replicas ``scope`` stops (each routed port's:
    ``port_routes``)."""
    service_of = {names.route_id(r.application_id, svc): svc for svc in scope}
    for svc in spec.services:
        if isinstance(svc, WebService) and svc.name in scope:
            service_of.update({rid: svc.name for rid in port_routes.route_ids(r.application_id, svc)})
    return [
        t
        for t in routes
        if t.route_id in service_of and t.upstreams and dom.stops(scope, service_of[t.route_id], t.server_id)
    ]


async def stop_for_recreate(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, wait: Waiter) -> None:
    """Before the new replicas start: the recreate services' routes removed, their old replicas stopped
    (where ``_scope`` says). Raises :class:`RecreateFailedError` when a route removal was not confirmed
    (nothing was stopped)."""
    scope = await _scope(rt, r, spec)
    if not scope:
        return
    moving = await _moving(rt, r, spec)
    before = _routed(r, scope, await read(rt, store.routes_of, r.application_id), spec)
    ops = tuple(RouteOp("remove", t.route_id, t.hosts, t.upstreams, t.server_id) for t in before)
    fresh = bool(ops) and not await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP)
    if fresh:  # a server the service leaves that does not answer keeps its route (noted in the log)
        ops = await reachable(rt, r, spec, ops)
    failure = await _route_step(rt, r, RECREATE_STEP, ops, wait)
    if failure is not None:
        raise RecreateFailedError(f"strategy recreate: {failure}")
    running = [(d, c) for _, d, c in await _old_replicas(rt, r, spec, scope) if c.state in ("running", "restarting")]
    await asyncio.gather(*(docker.stop(c.name) for docker, c in running))
    if running or fresh:
        removed = len(await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP))
        why = "volume data moves to another server" if moving else "strategy recreate"
        stopped = machine.OldStoppedForRecreate(tuple(scope), len(running), removed, why)
        await transit(rt, r.deployment_id, stopped)


async def undo_recreate(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, wait: Waiter, skip: Collection[str] = ()
) -> str:
    """A failed recreate: the old replicas started again (but on ``skip``: servers that do not answer) and
    their routes put back; a note for the reason ("" when the deployment stopped nothing)."""
    removed = await read(rt, store.ops_of, r.deployment_id, RECREATE_STEP)
    if not removed and not await _moving(rt, r, spec):  # nothing was stopped
        return ""
    scope = await _scope(rt, r, spec)
    found = await _old_replicas(rt, r, spec, scope, skip)
    old = [(d, c) for _, d, c in found if c.state not in ("running", "restarting")]
    await asyncio.gather(*(lost_task.start(rt, docker, c.name) for docker, c in old))  # a broken start is marked
    ops = tuple(RouteOp("apply", o.route_id, tuple(o.hosts), tuple(o.upstreams), o.server_id) for o in removed)
    tls = await tls_of(rt, r.previous_deployment_id, r.team_id, r.application_id)  # the routes as they were
    failure = await _route_step(rt, r, RECREATE_RESTORE_STEP, ops, wait, tls)
    if failure is not None:
        return f"{len(old)} old replica(s) started again, their routes NOT confirmed restored ({failure})"
    return f"{len(old)} old replica(s) started again" + (" and routed" if ops else "")
