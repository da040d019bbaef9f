"""Scaling the live version, driven by the application's rollout task from the persisted scale.

Carries out what ``cmd.application.scale`` recorded (``usecases/scaling.py``) and publishes
``evt.application.scaled``. The rollout task runs it only when no deployment of the application runs (and
plans it only if none does under the admission lock: a deployment admitted between goes first), and
admission starts no deployment while a scale is unfinished, so the two never overlap. Each phase is done
from the ``scales`` row, so a restart resumes it: pending plans the replicas to add and remove from the
live deployment's recorded containers; starting creates the new replicas from the live deployment's
spec and image (recorded first, under the live deployment, so a restart finds them) and checks each one's
readiness; routing sends every touched route its confirmed upstreams without the removed replicas and
with the ready new ones, and waits for proxy-sync's confirmation; draining waits out the grace period;
stopping gives the removed replicas SIGTERM (SIGKILL after the stop timeout) and removes them. A new
replica that is not ready, or a route change not confirmed, fails the scale: the new replicas are
removed and the routes stay as they were.

A service that names servers is scaled on them by the placement rule of its deployments
(``domain/scaling.py``): each new replica is started on its server through that server's engine
(``rt.fleet``), its image made present there as for a deployment, at the version the live deployment ran
(``steps.prepare_server`` and ``scale_images.py``: a prebuilt image pulled by its recorded digest where it
is missing, a compose service's own build streamed from the build server; a failed pull fails the scale
naming the service, and so does an image that cannot be streamed or created from, as in a deployment), and its readiness checked on that server; the route of each server that gains or
loses a replica is changed on that server's Traefik.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, WebService
from berth_common.catalogue.specs import servers_of
from berth_common.db.unit import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, removals, scales, store
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain import names, placement, port_routes, queueing, route_tls
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.port_routes import replica_upstream
from berth_scheduler.domain.route_tls import RouteTls
from berth_scheduler.domain.routing import RouteKey, RouteOp
from berth_scheduler.domain.scaling import (
    Phase,
    Scale,
    UnknownServiceError,
    plan_slots,
    restore_ops,
    route_ops,
    scaled_events,
)
from berth_scheduler.usecases.rollout import scale_images
from berth_scheduler.usecases.rollout.admission import lock_application
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.delivery import ImageMissingError, ImageNotDeliveredError
from berth_scheduler.usecases.rollout.image_pull import PullFailedError, log_lines
from berth_scheduler.usecases.rollout.routing import RESTORE_STEP, resend_pending, stage_step, tls_of, wait_step
from berth_scheduler.usecases.rollout.steps import Waiter, prepare_server, read, wait_ready, write
from berth_scheduler.usecases.rollout.steps import _start_one as start_one
from berth_scheduler.usecases.rollout.units import emit_all

log = get_logger(__name__)
# new replicas created and started at once: all of a scale's together, so nine start in about the time of one
SCALE_CONCURRENCY = 16


@dataclass(frozen=True)
class ScaleOwner:
    """The owner of a scale's route commands (``routing.RouteOwner``)."""

    deployment_id: str
    application_id: str


async def _record(unit: Unit, scale: Scale) -> Scale:
    await scales.save(unit.session, scale)
    if scale.finished:
        events = scaled_events(scale)
        await emit_all(unit, [(e, f"scaled-{scale.id}-{e.service}", None) for e in events])
        log.info("scale finished", request_id=scale.id, phase=scale.phase.value, failure=scale.failure)
    return scale


async def _save(rt: RolloutContext, scale: Scale) -> Scale:
    async def body(unit: Unit) -> Scale:
        return await _record(unit, scale)

    result: Scale = await rt.units.run(body)
    return result


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _service(spec: ApplicationSpec, name: str) -> Any:
    return next(s for s in spec.services if s.name == name)


class ScaleDriver:
    """Runs an application's scales; remembers which route steps it re-sent since this process started."""

    def __init__(self) -> None:
        self._resumed: set[str] = set()

    async def __call__(self, rt: RolloutContext, application_id: str, wait: Waiter) -> bool:
        """Carry out the application's unfinished scales; False when there is none."""
        scale = await read(rt, scales.current, application_id)
        if scale is None:
            return False
        while not scale.finished:
            stepped = await self._step(rt, scale, wait)
            if stepped is None:
                return True  # a deployment holds the application: it goes first, the scale after it
            scale = stepped
        return True

    async def _step(self, rt: RolloutContext, scale: Scale, wait: Waiter) -> Scale | None:
        if scale.phase == Phase.PENDING:
            return await self._plan(rt, scale)
        if scale.phase == Phase.STARTING:
            return await self._start(rt, scale)
        if scale.phase == Phase.ROUTING:
            return await self._route(rt, scale, wait)
        if scale.phase == Phase.DRAINING:
            remaining = (scale.drain_until or 0.0) - rt.clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
            return await _save(rt, scale.moved(Phase.STOPPING))
        return await self._stop(rt, scale)

    # --- pending -----------------------------------------------------------------------------------

    async def _plan(self, rt: RolloutContext, scale: Scale) -> Scale | None:
        """One commit: the live deployment and the replicas to add and remove (or the reason there is none).
        None, nothing written, when a deployment holds the application: the rollout task found it free, but a
        start command's handler admitted one before this scale was recorded (admission refuses only a recorded
        scale), and the two must not overlap."""
        now = rt.clock()

        async def body(unit: Unit) -> Scale | None:
            s = unit.session
            await lock_application(unit, scale.application_id)
            if queueing.running(await store.queue_of(s, scale.application_id)) is not None:
                return None
            if await removals.is_active(s, scale.application_id):
                return await _record(unit, _failed(scale, "the application is being removed", now))
            live = await store.last_succeeded(s, scale.application_id)
            if live is None:
                return await _record(unit, _failed(scale, "the application has no live deployment to scale", now))
            spec: ApplicationSpec = rt.sealer.open(live.spec)
            current: dict[str, list[int]] = {svc.name: [] for svc in spec.services}
            for c in await store.containers_of(s, live.id):
                current.setdefault(c.service, []).append(int(c.replica))
            servers = {svc.name: servers_of(svc) for svc in spec.services}
            try:
                add, remove = plan_slots(scale.targets, current, servers)
            except UnknownServiceError as exc:
                return await _record(unit, _failed(scale, str(exc), now))
            before = {svc: len(current[svc]) for svc in scale.targets}
            planned = {"deployment_id": live.id, "before": before, "add": add, "remove": remove}
            if not add and not remove:
                return await _record(unit, scale.moved(Phase.DONE, finished_at=now, **planned))
            deadline = now + float(store.rollout_of(live).timeouts.readiness_s)
            phase = Phase.STARTING if add else Phase.ROUTING
            if phase == Phase.ROUTING:
                return await self._stage_routes(unit, rt, scale.moved(phase, **planned), [], now)
            return await _record(unit, scale.moved(phase, deadline_at=deadline, **planned))

        result: Scale | None = await rt.units.run(body)
        if result is not None and result.phase == Phase.ROUTING:
            rt.sent_steps.add((result.owner_id, 0))
        return result

    # --- starting ----------------------------------------------------------------------------------

    async def _start(self, rt: RolloutContext, scale: Scale) -> Scale:
        """Start every new replica and check its readiness; all ready: the route step, in one commit."""
        assert scale.deployment_id is not None
        live = await read(rt, store.load, scale.deployment_id)
        spec: ApplicationSpec = rt.sealer.open(live.spec)
        r = store.rollout_of(live)
        recorded = {
            c.name: (c.host_port, port_routes.recorded(c.more_ports))
            for c in await read(rt, store.containers_of, scale.deployment_id)
        }
        ran = await read(rt, build_records.images_of, scale.deployment_id)  # the services' images, by digest
        deadline = scale.deadline_at or (rt.clock() + r.timeouts.readiness_s)
        limit = asyncio.Semaphore(SCALE_CONCURRENCY)

        prepared = {server: asyncio.Lock() for server in {slot.server_id for slot in scale.add}}
        ready_servers: set[str] = set()
        ready_images: set[tuple[str, str]] = set()  # (service, server): its own image is there

        async def one(service: str, replica: int, server: str) -> ContainerSpec:
            name = names.container_name(spec.name, service, scale.deployment_id or "", replica)
            async with prepared[server]:  # the server's network and images, once per scale
                if server not in ready_servers:
                    done = await scale_images.app_image_on(rt, r, spec, server)
                    if done:
                        await log_lines(rt, r.deployment_id, [f"[scale] {done}"])
                    await prepare_server(rt, r, spec, server)
                    ready_servers.add(server)
                if (service, server) not in ready_images:
                    done = await scale_images.service_image(rt, r, spec, service, server, ran)
                    if done:
                        await log_lines(rt, r.deployment_id, [f"[scale] {done}"])
                    ready_images.add((service, server))
            async with limit:
                slot = placement.Slot(_service(spec, service), replica, server)
                port, more = recorded.get(name, (None, {}))
                cs = await start_one(rt, r, spec, slot, port, name in recorded, more)
            await wait_ready(rt, cs, deadline)
            return cs

        tasks = [asyncio.create_task(one(slot.service, slot.replica, slot.server_id)) for slot in scale.add]
        try:
            started = list(await asyncio.gather(*tasks))
            log.info("new replicas ready", request_id=scale.id, count=len(started))
        except (NotReadyError, PullFailedError) as exc:
            await _cancel(tasks)
            await self._remove_added(rt, scale)
            why = f"a new replica is not ready: {exc}" if isinstance(exc, NotReadyError) else str(exc)
            return await _save(rt, _failed(scale, why, rt.clock()))
        except (ImageMissingError, ImageNotDeliveredError, DockerOperationError) as exc:  # as a deployment, not retried
            await _cancel(tasks)
            await self._remove_added(rt, scale)
            return await _save(rt, _failed(scale, f"a new replica could not start: {exc}", rt.clock()))
        except BaseException:
            await _cancel(tasks)  # the driver retries the phase: none keeps going meanwhile
            raise
        now = rt.clock()

        async def body(unit: Unit) -> Scale:
            await store.mark_ready(unit.session, [cs.name for cs in started])
            return await self._stage_routes(unit, rt, scale.moved(Phase.ROUTING), started, now)

        result: Scale = await rt.units.run(body)
        rt.sent_steps.add((scale.owner_id, 0))
        return result

    async def _stage_routes(
        self, unit: Unit, rt: RolloutContext, scale: Scale, started: list[ContainerSpec], now: float
    ) -> Scale:
        """In ``unit``: the merged upstream list of every touched route staged for proxy-sync, and the
        scale saved in ``routing`` (or past it when no route is touched)."""
        ops, before = await self._route_ops(unit, rt, scale, started)
        if ops:
            owner = ScaleOwner(scale.owner_id, scale.application_id)
            live = await store.load(unit.session, scale.deployment_id or "")
            tls = (
                None
                if live is None
                else route_tls.of_spec(rt.sealer.open(live.spec), scale.team_id, owner.application_id)
            )
            await stage_step(unit, owner, 0, tuple(ops), tls=tls)
            await stage_step(unit, owner, RESTORE_STEP, restore_ops(ops, before), send=False)
            return await _record(unit, scale.moved(Phase.ROUTING, deadline_at=now + rt.settings.route_timeout_s))
        return await _record(unit, _after_routes(scale, now))

    async def _route_ops(
        self, unit: Unit, rt: RolloutContext, scale: Scale, started: list[ContainerSpec]
    ) -> tuple[list[RouteOp], dict[RouteKey, tuple[tuple[str, ...], tuple[str, ...]]]]:
        """Per touched web service with hosts, the command for each of its servers that gains or loses a
        replica: that server's confirmed upstreams without the removed replicas, with the new ones; and the
        confirmed (hosts, upstreams) of every route before the change (to put back)."""
        assert scale.deployment_id is not None
        live = await store.load(unit.session, scale.deployment_id)
        assert live is not None
        spec: ApplicationSpec = rt.sealer.open(live.spec)
        rows = await store.containers_of(unit.session, scale.deployment_id)
        by_slot = {(c.service, int(c.replica)): c for c in rows}
        confirmed = {t.key: t for t in await store.routes_of(unit.session, scale.application_id)}
        before = {key: (t.hosts, t.upstreams) for key, t in confirmed.items()}
        ops: list[RouteOp] = []
        for name in sorted({s.service for s in (*scale.add, *scale.remove)}):
            svc = _service(spec, name)
            if not isinstance(svc, WebService) or not svc.hosts:
                continue  # not routed
            servers = servers_of(svc)
            for route_id, port, given in port_routes.routes_of(scale.application_id, svc):
                here = {server: confirmed.get((server, route_id)) for server in servers}
                hosts = next((t.hosts for t in here.values() if t is not None and t.hosts), None)
                removed = [
                    (row.server_id, up)
                    for s in scale.remove
                    if s.service == name
                    and (row := by_slot.get((s.service, s.replica))) is not None
                    and (up := replica_upstream(row, port, svc.port))
                ]
                added = [
                    (cs.server_id, cs.upstream_of(port))
                    for cs in sorted(started, key=lambda c: c.replica)
                    if cs.service == name
                ]
                ops += route_ops(
                    route_id,
                    hosts or given,
                    servers,
                    {server: t.upstreams for server, t in here.items() if t is not None},
                    removed,
                    [(server, up) for server, up in added if up],
                )
        return ops, before

    # --- routing -----------------------------------------------------------------------------------

    async def _route(self, rt: RolloutContext, scale: Scale, wait: Waiter) -> Scale:
        owner = ScaleOwner(scale.owner_id, scale.application_id)
        tls = await tls_of(rt, scale.deployment_id, scale.team_id, scale.application_id)
        if scale.owner_id not in self._resumed and (scale.owner_id, 0) not in rt.sent_steps:
            resent = await resend_pending(rt, owner, 0, tls)
            log.info("scale route step resumed", request_id=scale.id, resent=resent)
        self._resumed.add(scale.owner_id)
        deadline = scale.deadline_at or (rt.clock() + rt.settings.route_timeout_s)
        done, failure = await wait_step(rt, owner, 0, deadline, wait)
        if done:
            return await _save(rt, _after_routes(scale, rt.clock()))
        why = failure or f"the route change was not confirmed live within {rt.settings.route_timeout_s:g}s"
        note = await self._restore(rt, owner, wait, tls)
        await self._remove_added(rt, scale)
        return await _save(rt, _failed(scale, f"{why} ({note}; the added replicas removed)", rt.clock()))

    async def _restore(self, rt: RolloutContext, owner: ScaleOwner, wait: Waiter, tls: RouteTls | None) -> str:
        """Send the routes as they were before the step (recorded with it, not sent until now) and wait for
        them; a late confirmation of the step itself is then outranked by their newer generations."""
        resent = await resend_pending(rt, owner, RESTORE_STEP, tls)
        log.info("scale routes being restored", request_id=owner.deployment_id, commands=resent)
        done, failure = await wait_step(rt, owner, RESTORE_STEP, rt.clock() + rt.settings.route_timeout_s, wait)
        if done:
            return "routes restored"
        return f"routes NOT confirmed restored ({failure or 'no answer from proxy-sync'})"

    # --- stopping ----------------------------------------------------------------------------------

    async def _stop(self, rt: RolloutContext, scale: Scale) -> Scale:
        await self._stop_slots(rt, scale, scale.remove)
        return await _save(rt, scale.moved(Phase.DONE, finished_at=rt.clock()))

    async def _remove_added(self, rt: RolloutContext, scale: Scale) -> None:
        await self._stop_slots(rt, scale, scale.add)

    async def _stop_slots(self, rt: RolloutContext, scale: Scale, slots: tuple[Any, ...]) -> None:
        """Stop and remove the replicas of ``slots`` on the servers they were recorded on, then forget them."""
        assert scale.deployment_id is not None
        rows = await read(rt, store.containers_of, scale.deployment_id)
        wanted = {(s.service, s.replica) for s in slots}
        doomed = [c for c in rows if (c.service, int(c.replica)) in wanted]

        async def on(server: str) -> None:
            docker = await rt.fleet.docker(server)
            found = {c.name: c for c in await docker.list_containers({labels.DEPLOYMENT: scale.deployment_id or ""})}
            mine = [c.name for c in doomed if c.server_id == server]
            running = [n for n in mine if n in found and found[n].state in ("running", "restarting")]
            await asyncio.gather(*(docker.stop(n) for n in running))
            await asyncio.gather(*(docker.remove(n) for n in mine if n in found))

        await asyncio.gather(*(on(server) for server in dict.fromkeys(c.server_id for c in doomed)))
        await write(rt, store.forget_containers, [c.name for c in doomed])


def _failed(scale: Scale, why: str, now: float) -> Scale:
    return scale.moved(Phase.FAILED, failure=why, finished_at=now)


def _after_routes(scale: Scale, now: float) -> Scale:
    """Routes confirmed: drain the removed replicas (if any), else done."""
    if scale.remove:
        return scale.moved(Phase.DRAINING, drain_until=now + scale.drain_grace_s)
    return scale.moved(Phase.DONE, finished_at=now)
