"""The verifying state: Berth's own readiness check on every replica, then the switch to routing.

A deployment that starts its replicas goes on to verify them in the same step (``start_and_verify``), and
each replica's check begins the moment Docker reports it started: most servers listen within tens of
milliseconds of their start, and that time does not wait behind the database. When every replica passed
within the setting ``quick_ready_s``, one transaction records ``replicas started``, each ``replica ready`` and the
switch; otherwise ``replicas started`` is committed and the checks go on (as after a restart, which
resumes in ``verify_replicas``). A replica is recorded ready only with or after ``replicas started``.

Each replica is checked on its own; one that passes while others are still being checked is recorded
ready at once (``replica ready``). The last one is recorded in the same transaction that computes the
route plan, moves the deployment to routing and stages the commands of its first route step, so
proxy-sync gets the route as soon as the last replica passed: one commit, one read and one write of the
deployment for all the transitions. A server reaches Traefik only after its replica passed: the route
commands name only ready replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from berth_common.catalogue import ApplicationSpec
from berth_common.db.unit import Unit
from berth_scheduler.adapters import store
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain import machine, placement, route_tls
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import plan_routes
from berth_scheduler.usecases.rollout import volume_move
from berth_scheduler.usecases.rollout.adoption import adopted
from berth_scheduler.usecases.rollout.apply import apply, apply_all
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.recreate import RecreateFailedError, stop_for_recreate
from berth_scheduler.usecases.rollout.routing import stage_step
from berth_scheduler.usecases.rollout.steps import (
    Waiter,
    desired_routes,
    read,
    specs_for,
    start_replicas,
    transit,
    wait_ready,
)


async def start_and_verify(
    rt: RolloutContext,
    r: Rollout,
    row: Any,
    wait: Waiter,
    before_layer: Callable[[list[str]], Awaitable[float | None]] | None = None,
) -> None:
    """starting, then verifying: each replica's readiness check starts as soon as it runs. When every
    replica passes within the setting ``quick_ready_s`` of the last start, ``replicas started``, each ``replica ready``
    and the switch to routing are one commit; otherwise ``replicas started`` is committed and verifying
    goes on as after a restart. A ``recreate`` service's old replicas leave the routes and stop first
    (``recreate.py``), as do those of a service whose volume data moves to another server, then copied
    (``volume_move.py``). ``before_layer`` runs before each start layer (a compose application's pre-deploy
    job); a readiness deadline it answers counts for the replicas started after it."""
    spec = rt.sealer.open(row.spec)
    try:
        abandon = bool(getattr(row, "abandon_volume_data", False))  # the drain's option
        moves = await volume_move.plan(rt, r, spec, abandon=abandon)  # recorded before anything stops
        await stop_for_recreate(rt, r, spec, wait)
        if moves:
            r = await volume_move.copy(rt, r, spec, moves)
    except (RecreateFailedError, volume_move.MoveFailedError) as exc:
        await transit(rt, r.deployment_id, machine.Fail(str(exc)[:3500]))
        return
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)

    async def before(layer: list[str]) -> None:
        nonlocal deadline
        assert before_layer is not None
        deadline = await before_layer(layer) or deadline

    early: dict[str, asyncio.Task[None]] = {}

    def started(cs: ContainerSpec) -> None:
        early[cs.name] = asyncio.create_task(wait_ready(rt, cs, deadline), name=f"ready:{cs.name}")

    try:
        specs = await start_replicas(rt, r, row, wait, started, before if before_layer is not None else None)
        started_input = machine.ContainersStarted(len(specs))
        if await _all_passed(list(early.values()), rt.settings.quick_ready_s):
            await _switch(rt, r, rt.sealer.open(row.spec), specs, [cs.name for cs in specs], [started_input])
            return
        after = await transit(rt, r.deployment_id, started_input)
        await verify_replicas(rt, after, row, wait, early=early)
    finally:
        await _cancel(early.values())


async def _all_passed(checks: list[asyncio.Task[None]], within_s: float) -> bool:
    if not checks:
        return False
    done, pending = await asyncio.wait(checks, timeout=within_s)
    return not pending and all(not t.cancelled() and t.exception() is None for t in done)


async def _switch(
    rt: RolloutContext,
    r: Rollout,
    spec: ApplicationSpec,
    specs: list[ContainerSpec],
    last_ready: list[str],
    first: list[machine.Input] | None = None,
) -> None:
    """One commit: ``first`` inputs, the replicas that passed last recorded ready, the route plan, routing,
    and the first route step's commands staged (sent at the commit)."""

    async def body(unit: Unit) -> bool:
        await store.mark_ready(unit.session, last_ready)
        before = await store.routes_of(unit.session, r.application_id)
        plan = plan_routes(before, desired_routes(r, spec, specs))
        inputs = [*(first or []), *(machine.ReplicaReady(name) for name in last_ready), machine.ReplicasReady(plan)]
        after = await apply_all(unit, rt.sealer, r.deployment_id, inputs, rt.clock())
        tls = route_tls.of_spec(spec, r.team_id, r.application_id)
        return bool(plan.steps) and await stage_step(unit, after, 0, plan.steps[0], fresh=True, tls=tls)

    if await rt.units.run(body):
        rt.sent_steps.add((r.deployment_id, 0))


async def _cancel(tasks: Any) -> None:
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, return_exceptions=True)


async def verify_replicas(
    rt: RolloutContext, r: Rollout, row: Any, wait: Waiter, *, early: dict[str, asyncio.Task[None]] | None = None
) -> None:
    spec: ApplicationSpec = rt.sealer.open(row.spec)
    rows = await read(rt, store.containers_of, r.deployment_id)
    kept = await read(rt, adopted, rt.sealer, r, spec)  # a stateful service kept running (``adoption.py``)
    rows = [*rows, *(row for found in kept.values() for row in found)]
    specs = specs_for(r, spec, rows)
    if len(specs) != len(placement.slots(spec)):
        await transit(rt, r.deployment_id, machine.Fail("a replica's container record is missing (scheduler data)"))
        return
    ready_before = {c.name for c in rows if c.ready}
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)
    waiting = {cs.name for cs in specs}
    last_ready: list[str] = []  # passed when no other replica was left: recorded with the switch
    early = early or {}

    async def one(cs: ContainerSpec) -> None:
        check: Awaitable[None] = early.get(cs.name) or wait_ready(rt, cs, deadline)
        await check
        waiting.discard(cs.name)
        if cs.name in ready_before:
            return
        if not waiting:
            last_ready.append(cs.name)
            return

        async def body(unit: Unit) -> None:
            await store.mark_ready(unit.session, [cs.name])
            await apply(unit, rt.sealer, r.deployment_id, machine.ReplicaReady(cs.name), rt.clock())

        await rt.units.run(body)

    tasks = [asyncio.create_task(one(cs), name=f"verify:{cs.name}") for cs in specs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        await _cancel(tasks)
    for t in done:
        exc = t.exception()
        if isinstance(exc, NotReadyError):
            await transit(rt, r.deployment_id, machine.Fail(str(exc)))
            return
        if exc is not None:
            raise exc

    await _switch(rt, r, spec, specs, last_ready)
