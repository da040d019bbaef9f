"""The verifying state: Berth's own readiness check on every replica, then the switch to routing.

A deployment that starts its replicas goes on to verify them in the same step (``start_and_verify``), and
each replica's check begins the moment Docker reports it started, while the ``replicas started``
transition is committed: most servers listen within tens of milliseconds of their start, and that time no
longer waits behind the database. A replica is still recorded ready only once the deployment is verifying.

Each replica is checked on its own; one that passes while others are still being checked is recorded
ready at once (``replica ready``). The last one is recorded in the same transaction that computes the
route plan, moves the deployment to routing and stages the commands of its first route step, so
proxy-sync gets the route as soon as the last replica passed: one commit, one read and one write of the
deployment for both transitions. A server reaches Traefik only after its replica passed: the route
commands name only ready replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from berth_common.catalogue import ApplicationSpec
from berth_common.db.unit import Unit
from berth_scheduler.adapters import store
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain import machine
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import plan_routes
from berth_scheduler.rollout.apply import apply, apply_all
from berth_scheduler.rollout.routing import stage_step
from berth_scheduler.rollout.runtime import Runtime
from berth_scheduler.rollout.steps import Waiter, desired_routes, read, specs_for, start_replicas, transit


async def start_and_verify(rt: Runtime, r: Rollout, row: Any, wait: Waiter) -> None:
    """starting, then verifying: each replica's readiness check starts as soon as it runs."""
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)
    early: dict[str, asyncio.Task[None]] = {}

    def started(cs: ContainerSpec) -> None:
        early[cs.name] = asyncio.create_task(rt.readiness.wait_ready(cs, deadline), name=f"ready:{cs.name}")

    try:
        after = await start_replicas(rt, r, row, wait, started)
        await verify_replicas(rt, after, row, wait, early=early)
    finally:
        await _cancel(early.values())


async def _cancel(tasks: Any) -> None:
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, return_exceptions=True)


async def verify_replicas(
    rt: Runtime, r: Rollout, row: Any, wait: Waiter, *, early: dict[str, asyncio.Task[None]] | None = None
) -> None:
    spec: ApplicationSpec = rt.sealer.open(row.spec)
    rows = await read(rt, store.containers_of, r.deployment_id)
    specs = specs_for(r, spec, rows)
    if len(specs) != sum(s.replicas for s in spec.services):
        await transit(rt, r.deployment_id, machine.Fail("a replica's container record is missing (scheduler data)"))
        return
    ready_before = {c.name for c in rows if c.ready}
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)
    waiting = {cs.name for cs in specs}
    last_ready: list[str] = []  # passed when no other replica was left: recorded with the switch
    early = early or {}

    async def one(cs: ContainerSpec) -> None:
        check: Awaitable[None] = early.get(cs.name) or rt.readiness.wait_ready(cs, deadline)
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

    async def switch(unit: Unit) -> bool:
        await store.mark_ready(unit.session, last_ready)
        before = await store.routes_of(unit.session, r.application_id)
        plan = plan_routes(before, desired_routes(r, spec, specs))
        inputs: list[machine.Input] = [machine.ReplicaReady(name) for name in last_ready]
        after = await apply_all(unit, rt.sealer, r.deployment_id, [*inputs, machine.ReplicasReady(plan)], rt.clock())
        return bool(plan.steps) and await stage_step(unit, after, 0, plan.steps[0], fresh=True)

    if await rt.units.run(switch):
        rt.sent_steps.add((r.deployment_id, 0))
