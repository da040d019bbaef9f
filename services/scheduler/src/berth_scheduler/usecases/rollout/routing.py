"""Route steps: send proxy-sync the commands of one plan step, wait until each is confirmed live.

Each command carries the route's next generation (kept in ``routes``), so proxy-sync refuses a stale
one; answers are matched by (route id, generation). After a restart, commands still unanswered are sent
again with the same generation.
"""

from __future__ import annotations

from typing import Any, Protocol

from berth_common.catalogue import ApplicationSpec, Message, RemoveRoute
from berth_common.db.unit import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.domain import machine, placement, route_tls
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.route_tls import RouteTls, apply_routes
from berth_scheduler.domain.routing import LOCAL, RouteOp, left_behind, skipped_note
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.image_pull import log_lines
from berth_scheduler.usecases.rollout.steps import Waiter, read, transit
from berth_scheduler.usecases.rollout.unreachable import silent

log = get_logger(__name__)
RESTORE_STEP = -1


class RouteOwner(Protocol):
    """What sends route commands: a deployment (``Rollout``) or an application's removal."""

    @property
    def deployment_id(self) -> str: ...

    @property
    def application_id(self) -> str: ...


def command_for(op: RouteOp, generation: int, tls: RouteTls | None = None) -> Message:
    """The command of ``op``; an ``apply`` carries the application's HTTPS for the route's hosts (``tls``)."""
    if op.kind == "apply":
        return apply_routes(op, generation, tls)
    return RemoveRoute(route_id=op.route_id, generation=generation, server_id=op.server_id)


async def tls_of(rt: RolloutContext, deployment_id: str | None, team_id: str, application_id: str) -> RouteTls | None:
    """The route HTTPS of a recorded deployment's spec (None: it has none, or there is no such deployment)."""
    row = await read(rt, store.load, deployment_id) if deployment_id else None
    return None if row is None else route_tls.of_spec(rt.sealer.open(row.spec), team_id, application_id)


def command_id(op: RouteOp, generation: int) -> str:
    """The message id of a route command: one per (server, route, generation)."""
    where = "" if op.server_id == LOCAL else f"{op.server_id}-"
    return f"route-{where}{op.route_id}-g{generation}"


def op_of(row: Any) -> RouteOp:
    return RouteOp(row.kind, row.route_id, tuple(row.hosts), tuple(row.upstreams), row.server_id)


def route_name(row: Any) -> str:
    """A route as a person reads it in a reason: its id, and its server unless it is ``local``."""
    return row.route_id if row.server_id == LOCAL else f"{row.route_id} on server {row.server_id}"


async def stage_step(
    unit: Unit,
    r: RouteOwner,
    step: int,
    ops: tuple[RouteOp, ...],
    *,
    fresh: bool = False,
    send: bool = True,
    tls: RouteTls | None = None,
) -> bool:
    """In ``unit``: record the commands of ``step`` and stage them in the outbox, unless they were already
    (``fresh``: the caller's transaction just made the plan, nothing of it can exist yet). ``send=False``
    records them only, with their generations, to be sent later by ``resend_pending`` if ever needed (what
    puts routes back after a step that was not confirmed)."""
    if not fresh and await store.ops_of(unit.session, r.deployment_id, step):
        return False
    for op in ops:
        gen = await store.next_generation(unit.session, op.route_id, r.application_id, op.server_id)
        await store.add_op(unit.session, r.deployment_id, step, op, gen)
        if send:
            await unit.emit(command_for(op, gen, tls), id=command_id(op, gen))
    return True


async def send_step(
    rt: RolloutContext, r: Rollout, step: int, ops: tuple[RouteOp, ...], tls: RouteTls | None = None
) -> None:
    """Record and send the commands of ``step`` once (in one transaction, through the outbox)."""

    async def body(unit: Unit) -> bool:
        return await stage_step(unit, r, step, ops, tls=tls)

    await rt.units.run(body)
    rt.sent_steps.add((r.deployment_id, step))


async def resend_pending(rt: RolloutContext, r: RouteOwner, step: int, tls: RouteTls | None = None) -> int:
    """Publish again the unanswered commands of ``step`` (same generation): after a scheduler restart."""
    rows = [o for o in await read(rt, store.ops_of, r.deployment_id, step) if o.status == "pending"]
    for o in rows:
        command = command_for(op_of(o), o.generation, tls)
        await rt.bus.publish(command, id=f"{command_id(op_of(o), o.generation)}-again")
    return len(rows)


def verdict(rows: list[Any]) -> tuple[bool, str | None]:
    """(all confirmed, the first failure)."""
    for o in rows:
        if o.status == "failed":
            what = "remove" if o.kind == "remove" else "apply"
            return False, f"proxy-sync could not {what} route {route_name(o)}: {o.reason or 'no reason given'}"
    return all(o.status == "done" for o in rows) and bool(rows), None


async def wait_step(
    rt: RolloutContext, r: RouteOwner, step: int, deadline: float, wait: Waiter
) -> tuple[bool, str | None]:
    """Wait for proxy-sync's answers to ``step``: (confirmed, failure reason or None)."""
    while True:
        done, failure = verdict(await read(rt, store.ops_of, r.deployment_id, step))
        if done or failure:
            return done, failure
        remaining = deadline - rt.clock()
        if remaining <= 0:
            return False, None
        await wait(min(remaining, 1.0))


async def reachable(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, ops: tuple[RouteOp, ...]
) -> tuple[RouteOp, ...]:
    """The ops of a step but the removals on servers the deployment leaves that do not answer
    (``usecases/rollout/unreachable.py``); the skipped ones are noted in the deployment's log."""
    staying = set(placement.servers_in(spec))
    leaving = [op.server_id for op in ops if op.kind == "remove" and op.server_id not in staying]
    if not leaving:
        return ops
    sent, skipped = left_behind(ops, await silent(rt, leaving))
    if skipped:
        await log_lines(rt, r.deployment_id, [f"[{r.state.value}] {skipped_note(skipped)}"])
    return sent


class RouteStepper:
    """Runs the routing state; remembers which steps it re-sent since this process started."""

    def __init__(self) -> None:
        self._resumed: set[tuple[str, int]] = set()

    async def __call__(self, rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
        plan = r.plan
        assert plan is not None
        if r.route_step >= len(plan.steps):
            await transit(rt, r.deployment_id, machine.RouteStepConfirmed(r.route_step))
            return
        step = r.route_step
        existing = await read(rt, store.ops_of, r.deployment_id, step)
        tls = route_tls.of_spec(rt.sealer.open(row.spec), r.team_id, r.application_id)
        if not existing:
            ops = await reachable(rt, r, rt.sealer.open(row.spec), plan.steps[step])
            if not ops:  # only removals on servers that do not answer: nothing to wait for
                await transit(rt, r.deployment_id, machine.RouteStepConfirmed(step))
                return
            await send_step(rt, r, step, ops, tls)
        elif (r.deployment_id, step) not in self._resumed and (r.deployment_id, step) not in rt.sent_steps:
            sent = await resend_pending(rt, r, step, tls)
            log.info("route step resumed", deployment_id=r.deployment_id, step=step, resent=sent)
        self._resumed.add((r.deployment_id, step))
        deadline = r.deadline_at or (rt.clock() + r.timeouts.route_s)
        done, failure = await wait_step(rt, r, step, deadline, wait)
        if done:
            await transit(rt, r.deployment_id, machine.RouteStepConfirmed(step))
        elif failure:
            await transit(rt, r.deployment_id, machine.Fail(failure))
        else:
            pending = [
                route_name(o) for o in await read(rt, store.ops_of, r.deployment_id, step) if o.status == "pending"
            ]
            await transit(
                rt,
                r.deployment_id,
                machine.Fail(
                    f"route(s) {', '.join(pending)} not confirmed live within {r.timeouts.route_s:g}s "
                    "(is the proxy-sync service running and Traefik answering?)"
                ),
            )
