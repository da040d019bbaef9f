"""The work of each rollout state, done from the persisted state so that it can be repeated after a restart.

starting: create and start every replica (an existing container of the same name is reused; the records
and host ports were written when the deployment entered the state), layer by layer of a compose
application's ``depends_on`` (``depends.py``), each joining its networks before it starts; a stateful
compose service that did not change keeps its running containers (``adoption.py``); then on to verifying (``verify.py``)
without going back to the database: Berth's readiness check on each, begun as soon as each replica runs;
draining: wait out the grace period;
stopping_old: SIGTERM then SIGKILL (after the stop timeout) for every other container of the
application, then remove them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from berth_common import labels
from berth_common.catalogue import ApplicationSpec, Replica, WebService
from berth_common.db.unit import Unit
from berth_common.docker import DockerUnavailable
from berth_common.fleet import SERVER_NETWORK
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, store
from berth_scheduler.adapters.docker import DockerOperationError, PortInUseError
from berth_scheduler.adapters.ports import allocate_port
from berth_scheduler.domain import (
    app_files,
    builds,
    compose,
    machine,
    names,
    placement,
    port_routes,
    published_ports,
    volumes,
)
from berth_scheduler.domain.containers import ContainerSpec, container_spec
from berth_scheduler.domain.machine import Input, Rollout
from berth_scheduler.domain.port_routes import replica_upstream as replica_upstream  # used from here too
from berth_scheduler.domain.routing import LOCAL, RouteTarget
from berth_scheduler.domain.runs import one_off
from berth_scheduler.usecases.read_only_files import with_read_only_files
from berth_scheduler.usecases.rollout.adoption import adopted, kept_slots, running
from berth_scheduler.usecases.rollout.apply import apply, replica_records
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.delivery import image_on_server
from berth_scheduler.usecases.rollout.depends import wait_dependencies
from berth_scheduler.usecases.rollout.image_pull import log_lines
from berth_scheduler.usecases.rollout.lost_task import clear_lost_task, lost, remove_containers, start, started
from berth_scheduler.usecases.rollout.subnet_check import check_server
from berth_scheduler.usecases.rollout.unreachable import note_skipped, silent

log = get_logger(__name__)
Waiter = Callable[[float], Awaitable[None]]  # wait for a wake-up, at most this many seconds
START_CONCURRENCY = 4  # replicas created and started at once (the engine serialises much of it anyway)


async def transit(rt: RolloutContext, deployment_id: str, inp: Input) -> Rollout:
    async def body(unit: Unit) -> Rollout:
        return await apply(unit, rt.sealer, deployment_id, inp, rt.clock())

    result: Rollout = await rt.units.run(body)
    return result


async def read(rt: RolloutContext, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    async with rt.sessionmaker() as s:
        return await fn(s, *args)


async def write(rt: RolloutContext, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    async with rt.sessionmaker() as s, s.begin():
        return await fn(s, *args)


def specs_for(r: Rollout, spec: ApplicationSpec, rows: list[Any]) -> list[ContainerSpec]:
    """The container specs of a deployment, from its recorded containers (host ports included); a
    container it keeps from the live deployment (``adoption.py``, in ``rows``) under its own name."""
    by_slot = {(row.service, row.replica): row for row in rows}
    out = []
    for slot in placement.slots(spec):
        svc, n = slot.service, slot.replica
        row = by_slot.get((svc.name, n))
        port = row.host_port if row is not None else None
        more = port_routes.recorded(getattr(row, "more_ports", None))
        local_web = isinstance(svc, WebService) and slot.server_id == LOCAL
        if local_web and (port is None or any(p not in more for p in port_routes.more_ports(svc))):
            continue
        if row is None and slot.server_id != LOCAL:
            continue
        cs = container_spec(
            r.application_id, r.deployment_id, spec, svc, n, r.run_image, port, r.team_id, slot.server_id, more
        )
        out.append(cs if row is None or row.name == cs.name else replace(cs, name=row.name))
    return out


async def wait_ready(rt: RolloutContext, cs: ContainerSpec, deadline: float) -> None:
    """Berth's readiness check of one replica, on the server it runs on."""
    checker = await rt.fleet.readiness(cs.server_id)
    await checker.wait_ready(cs, deadline)


async def _start_one(
    rt: RolloutContext,
    r: Rollout,
    spec: ApplicationSpec,
    slot: placement.Slot,
    port: int | None,
    recorded: bool,
    more: Mapping[int, int] | None = None,
    broke: bool = False,
) -> ContainerSpec:
    """Create (or find) and start one replica; a host port taken meanwhile gets another one (a replica on a
    remote server has none). ``recorded``: the container's record (and port, and ``more`` ports: those of
    its more routed ports) was written when the deployment entered ``starting``; ``broke``: it has the mark of
    a start call that broke with its engine (``lost_task.py``), which its start carried out clears."""
    svc, n, server = slot.service, slot.replica, slot.server_id
    name = names.container_name(spec.name, svc.name, r.deployment_id, n)
    web = isinstance(svc, WebService) and server == LOCAL
    wanted = port_routes.more_ports(svc) if web else []
    more = dict(more or {})
    docker = await rt.fleet.docker(server)
    for attempt in range(5):
        if web and (port is None or any(p not in more for p in wanted)):
            port, more, recorded = allocate_port(), {p: allocate_port() for p in wanted}, False
        cs = container_spec(r.application_id, r.deployment_id, spec, svc, n, r.run_image, port, r.team_id, server, more)
        cs = await with_read_only_files(docker, r.application_id, r.team_id, spec, svc, cs)
        if not recorded:  # recorded before it exists: found after a crash
            values = {
                "name": name,
                "deployment_id": r.deployment_id,
                "application_id": r.application_id,
                "service": svc.name,
                "kind": svc.kind,
                "replica": n,
                "host_port": port,
                "server_id": server,
                "more_ports": port_routes.as_record(more),
            }
            await write(rt, store.record_container, values)
            recorded = True
        existing = await docker.create_or_find(cs)
        if existing is not None and (existing.get("State") or {}).get("Running"):
            await started(rt, name, broke)
            return cs
        for network, aliases in cs.connects:
            await docker.connect_network(network, compose.connect_body(name, aliases))
        files = app_files.archive(spec, svc, read_only=False)
        if files is not None:  # the application's files it mounts, before it starts
            await docker.put_archive(name, "/", files)
        try:
            await start(rt, docker, name, broke=broke)  # a start call the engine's going away breaks is marked
            return cs
        except PortInUseError:
            await docker.remove(name)
            if not web:  # no port of its own to choose again: a port it publishes is taken on the server
                raise RuntimeError(published_ports.taken(svc, server)) from None
            log.warning("host port taken, choosing another", container=name, port=port, attempt=attempt)
            port = None
        except DockerOperationError as exc:
            if not lost(exc) or attempt == 4:
                raise
            await clear_lost_task(rt, server, docker, name)  # made again on the next attempt, unmarked
            broke = False
    raise RuntimeError(f"could not find a free host port for {name}" + published_ports.taken_note(svc, server))


async def start_replicas(
    rt: RolloutContext,
    r: Rollout,
    row: Any,
    wait: Waiter,
    on_started: Callable[[ContainerSpec], None] | None = None,
    before_layer: Callable[[list[str]], Awaitable[None]] | None = None,
) -> list[ContainerSpec]:
    """Start every replica (``on_started`` is told of each as soon as it runs); their specs in slot order.
    A pinned subnet is checked against every server's own routes first (``subnet_check.py``). The servers
    are prepared (image, networks) in parallel, then the replicas start in parallel, layer by
    layer of ``depends_on`` (one layer without it); a kept replica is already running (``adoption.py``).
    ``before_layer`` is awaited before each layer starts, once the layer's dependencies are met (a compose
    application's pre-deploy job: ``pre_deploy.py``). The caller records ``ContainersStarted``."""
    spec = rt.sealer.open(row.spec)
    records = await read(rt, store.containers_of, r.deployment_id)
    recorded = {c.name: (c.host_port, port_routes.recorded(c.more_ports)) for c in records}
    broke = {c.name for c in records if c.start_broke}  # an earlier start call broke with its engine
    kept = await read(rt, adopted, rt.sealer, r, spec)
    gone = {svc for svc, rows in kept.items() if not await running(rt, rows)}
    if gone:  # a kept service whose containers stopped is made again: recorded for this deployment now
        again = {(row.service, row.replica) for svc in gone for row in kept[svc]}
        fresh = replica_records(spec, r.deployment_id, r.application_id, again)
        await write(rt, store.record_container, fresh)
        recorded.update({v["name"]: (v["host_port"], port_routes.recorded(v["more_ports"])) for v in fresh})
        kept = {svc: rows for svc, rows in kept.items() if svc not in gone}
    in_place = kept_slots(kept)
    slots = placement.slots(spec)
    started: dict[tuple[str, int], ContainerSpec] = {}

    def ran(cs: ContainerSpec) -> None:
        started[(cs.service, cs.replica)] = cs
        if on_started is not None:
            on_started(cs)

    kept_rows = [row for rows in kept.values() for row in rows]
    for cs in specs_for(r, spec, kept_rows):
        if (cs.service, cs.replica) in in_place:
            ran(cs)
    servers = placement.servers_in(spec)
    await together([check_server(rt, r.application_id, spec, server) for server in servers])  # before any change
    await together([prepare_server(rt, r, spec, server, checked=True) for server in servers])
    limits = {server: asyncio.Semaphore(START_CONCURRENCY) for server in servers}
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)

    async def one(slot: placement.Slot) -> None:
        name = names.container_name(spec.name, slot.service.name, r.deployment_id, slot.replica)
        async with limits[slot.server_id]:
            port, more = recorded.get(name, (None, {}))
            cs = await _start_one(rt, r, spec, slot, port, name in recorded, more, name in broke)
        ran(cs)

    for layer in compose.layers(spec):
        await wait_dependencies(rt, spec, layer, list(started.values()), deadline)
        if before_layer is not None:
            await before_layer(layer)
        await together(
            [one(s) for s in slots if s.service.name in layer and (s.service.name, s.replica) not in in_place]
        )
    return [started[(s.service.name, s.replica)] for s in slots]


async def together(work: list[Awaitable[None]]) -> None:
    """Run ``work`` at once; the first failure cancels the rest (nothing keeps starting replicas behind a
    failed step) and is raised."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def prepare_server(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, server: str, *, checked: bool = False
) -> None:
    """What a server needs before its replicas start, once a pinned subnet is checked against its own routes
    (``subnet_check.py``; ``checked``: it was, for every server at once): the networks they join, the named volumes they mount
    (made once, kept as they are afterwards: ``domain/volumes.py``; a network or volume made before with
    other options than the spec pins is said in the deployment log, once), and the deployment's image
    (``delivery.py``: pulled from the push registry, or streamed from the build server)."""
    if not checked:
        await check_server(rt, r.application_id, spec, server)
    docker = await rt.fleet.docker(server)
    changed: list[str | None] = []
    if spec.private_network:
        net_labels = {
            labels.MANAGED: "true",
            labels.APP: r.application_id,
            **({labels.TEAM: r.team_id} if r.team_id else {}),
        }
        name, extra = compose.network_name(r.application_id), compose.network_extra(spec.network_options)
        found = await docker.ensure_network(name, net_labels, extra=extra)
        changed = [compose.network_change(name, server, extra, found)]
        if any(svc.internal_network is not None for svc in spec.services):
            await docker.ensure_network(compose.internal_network_name(r.application_id), net_labels, internal=True)
    if server == LOCAL:
        if spec.network is not None:
            await docker.ensure_network(spec.network, {labels.MANAGED: "true"})
    else:
        await docker.ensure_network(SERVER_NETWORK, {labels.MANAGED: "true"})
    for name in volumes.on_server(spec, server):
        body = volumes.create_body(r.application_id, name, r.team_id, spec.volume_options.get(name))
        changed.append(volumes.options_change(name, server, body, await docker.made_volume(body)))
    await log_lines(rt, r.deployment_id, [line for line in changed if line is not None], once=True)
    if r.image:
        await image_on_server(rt, r, spec, server)


def desired_routes(r: Rollout, spec: ApplicationSpec, ready: list[ContainerSpec]) -> list[RouteTarget]:
    """Each web service's routes on every server that runs one of its replicas (``port_routes.desired``)."""
    return port_routes.desired(r.application_id, spec, ready)


async def drain(rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
    remaining = (r.drain_until or 0.0) - rt.clock()
    if remaining > 0:
        await asyncio.sleep(remaining)
    await transit(rt, r.deployment_id, machine.Drained())


async def servers_of(rt: RolloutContext, application_id: str, spec: ApplicationSpec | None) -> list[str]:
    """The servers that may hold the application's containers: where any was recorded, and where ``spec``
    places its replicas."""
    found = await read(rt, store.servers_of_application, application_id)
    return list(dict.fromkeys([*found, *(placement.servers_in(spec) if spec is not None else [])]))


async def remove_all(
    rt: RolloutContext,
    selector: dict[str, str],
    *,
    stop: bool,
    exclude_deployment: str | None = None,
    servers: Sequence[str] = (LOCAL,),
    unreachable: list[str] | None = None,
    keep: Collection[str] = (),
) -> int:
    """Stop (SIGTERM, SIGKILL after each container's stop timeout) and remove containers by label, on every
    server given. A server that does not answer is skipped when ``unreachable`` collects it (its records
    stay, so a later rollout finds them), and raises otherwise. ``keep``: names left running. One whose start
    an engine's crash may have interrupted has what still runs of it ended first (``lost_task.py``). Returns
    how many were removed, a read-only files volume's filler (``domain/app_files.py``) removed but not counted."""

    async def on(server: str) -> int:
        try:
            docker = await rt.fleet.docker(server)
            found = [
                c
                for c in await docker.list_containers(selector)
                if (exclude_deployment is None or c.labels.get(labels.DEPLOYMENT) != exclude_deployment)
                and c.name not in keep
                and not one_off(c.labels)  # a one-off run outlives deployments (``usecases/runs.py``)
            ]
            if stop:
                await asyncio.gather(*(docker.stop(c.name) for c in found if c.state in ("running", "restarting")))
            await remove_containers(rt, server, docker, found)  # the helper first where a lost task may be
        except DockerUnavailable as exc:
            if unreachable is None or server == LOCAL:
                raise
            log.warning("server skipped: it does not answer", server_id=server, error=str(exc))
            unreachable.append(server)
            return 0
        await write(rt, store.forget_containers, [c.name for c in found])
        return sum(not app_files.filler(c.labels) for c in found)

    return sum(await asyncio.gather(*(on(server) for server in servers)))


async def stop_old(rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
    spec = rt.sealer.open(row.spec)
    kept = await read(rt, adopted, rt.sealer, r, spec)  # the kept containers become the deployment's own
    if kept:
        numbers = {x.name: x.replica for rows in kept.values() for x in rows}
        await write(rt, store.adopt_containers, numbers, r.deployment_id)
    own = {c.name for c in await read(rt, store.containers_of, r.deployment_id)}
    servers = await servers_of(rt, r.application_id, spec)
    # the servers it leaves are asked first, within the SSH timeout: one that hangs is skipped, not waited for
    staying = set(placement.servers_in(spec))
    skipped = await silent(rt, [s for s in servers if s not in staying])
    servers = [s for s in servers if s not in skipped]
    selector = {labels.APP: r.application_id}
    stopped = await remove_all(
        rt, selector, stop=True, exclude_deployment=r.deployment_id, servers=servers, unreachable=skipped, keep=own
    )
    await note_skipped(rt, r.deployment_id, skipped)
    ports = {svc.name: svc.port for svc in spec.services if isinstance(svc, WebService)}
    replicas = tuple(
        Replica(
            service=c.service,
            kind=c.kind,
            replica=c.replica,
            container=c.name,
            upstream=replica_upstream(c, ports.get(c.service)),
        )
        for c in await read(rt, store.containers_of, r.deployment_id)
    )
    await transit(rt, r.deployment_id, machine.OldStopped(stopped, replicas))


async def await_build(rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
    """The builder answers on the bus (the handlers move the state); here only the deadline is watched:
    each build's own when the deployment has several (``domain/builds.py``), else the deployment's."""
    recorded = await read(rt, build_records.builds_of, r.deployment_id)
    if any(b.deadline_at is not None for b in recorded):
        late = builds.overdue(recorded, rt.clock())
        if late:
            await transit(rt, r.deployment_id, machine.Fail(builds.overdue_reason(late, r.timeouts.build_s)))
            return
        await wait(min(max(0.0, (builds.next_deadline(recorded) or 0.0) - rt.clock()) + 0.01, 5.0))
        return
    remaining = (r.deadline_at or 0.0) - rt.clock()
    if remaining > 0:
        await wait(min(remaining, 5.0))
        return
    await transit(
        rt,
        r.deployment_id,
        machine.Fail(f"the build did not finish within {r.timeouts.build_s:g}s (is the builder service running?)"),
    )
