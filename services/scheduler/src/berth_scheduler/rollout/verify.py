"""The verifying state: Berth's own readiness check on every replica, then the switch to routing.

Each replica is checked on its own; one that passes while others are still being checked is recorded
ready at once (``replica ready``). The last one is recorded in the same transaction that computes the
route plan, moves the deployment to routing and stages the commands of its first route step, so
proxy-sync gets the route as soon as the last replica passed: one commit instead of four round trips
(mark ready, ``ReplicaReady``, ``ReplicasReady``, send the step). A server reaches Traefik only after its
replica passed: the route commands name only ready replicas.
"""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common.db.unit import Unit
from berth_scheduler.adapters import store
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain import machine
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import plan_routes
from berth_scheduler.rollout.apply import apply
from berth_scheduler.rollout.routing import stage_step
from berth_scheduler.rollout.runtime import Runtime
from berth_scheduler.rollout.steps import Waiter, desired_routes, read, specs_for, transit


async def _mark_ready(unit: Unit, rt: Runtime, r: Rollout, name: str) -> None:
    await store.mark_ready(unit.session, name)
    await apply(unit, rt.sealer, r.deployment_id, machine.ReplicaReady(name), rt.clock())


async def verify_replicas(rt: Runtime, r: Rollout, row: Any, wait: Waiter) -> None:
    spec = rt.sealer.open(row.spec)
    rows = await read(rt, store.containers_of, r.deployment_id)
    specs = specs_for(r, spec, rows)
    if len(specs) != sum(s.replicas for s in spec.services):
        await transit(rt, r.deployment_id, machine.Fail("a replica's container record is missing (scheduler data)"))
        return
    ready_before = {c.name for c in rows if c.ready}
    deadline = r.deadline_at or (rt.clock() + r.timeouts.readiness_s)
    waiting = {cs.name for cs in specs}
    last_ready: list[str] = []  # passed when no other replica was left: recorded with the switch

    async def one(cs: ContainerSpec) -> None:
        await rt.readiness.wait_ready(cs, deadline)
        waiting.discard(cs.name)
        if cs.name in ready_before:
            return
        if not waiting:
            last_ready.append(cs.name)
            return

        async def body(unit: Unit) -> None:
            await _mark_ready(unit, rt, r, cs.name)

        await rt.units.run(body)

    tasks = [asyncio.create_task(one(cs), name=f"ready:{cs.name}") for cs in specs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        exc = t.exception()
        if isinstance(exc, NotReadyError):
            await transit(rt, r.deployment_id, machine.Fail(str(exc)))
            return
        if exc is not None:
            raise exc

    async def switch(unit: Unit) -> bool:
        for name in last_ready:
            await _mark_ready(unit, rt, r, name)
        before = await store.routes_of(unit.session, r.application_id)
        plan = plan_routes(before, desired_routes(r, spec, specs))
        after = await apply(unit, rt.sealer, r.deployment_id, machine.ReplicasReady(plan), rt.clock())
        return bool(plan.steps) and await stage_step(unit, after, 0, plan.steps[0])

    if await rt.units.run(switch):
        rt.sent_steps.add((r.deployment_id, 0))
