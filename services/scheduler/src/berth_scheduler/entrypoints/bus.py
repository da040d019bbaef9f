"""Bus consumers of the scheduler service: thin wrappers that run a handler idempotently, then wake rollouts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from berth_common.bus import Delivery
from berth_common.catalogue import (
    BuildCancelled,
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    Message,
    PingService,
    RemoveApplication,
    ReplicasQuery,
    RouteFailed,
    RouteRemoved,
    RoutesApplied,
    StartDeployment,
)
from berth_common.db import Unit, idempotent
from berth_common.runtime import Context
from berth_scheduler import handlers
from berth_scheduler.usecases.rollout.orchestrator import Orchestrator
from berth_scheduler.usecases.rollout.replicas import replicas_of
from berth_scheduler.usecases.rollout.runtime import Runtime


async def register(ctx: Context) -> None:
    await ctx.bus.consume(PingService, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_ping))


def _then(
    rt: Runtime,
    handler: Callable[[Any, Unit], Awaitable[None]],
    after: Callable[[Any], None],
    *,
    at_commit: bool = False,
) -> Callable[[Any, Delivery], Awaitable[None]]:
    """Run ``handler`` once per message id (its transaction records the id); once it committed, call
    ``after(message)``. Its commands are published at the commit, its events by the rollouts' background
    publisher (``UnitRunner``), so neither the ack nor the rollout it wakes waits for them.

    ``at_commit``: also call it at the commit itself, before anything is published (for an ``after`` that
    may run twice): a new deployment starts without waiting for those round trips.
    """

    async def wrapped(message: Any, delivery: Delivery) -> None:
        async def body(unit: Unit) -> None:
            await handler(message, unit)

        hook = (lambda: after(message)) if at_commit else None
        await rt.units.run(body, delivery=delivery, on_commit=hook)
        after(message)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


async def register_deployments(
    ctx: Context, h: handlers.DeploymentHandlers, orchestrator: Orchestrator, rt: Runtime
) -> None:
    def kick(msg: StartDeployment) -> None:
        orchestrator.kick(msg.application_id)

    def cancelled(msg: CancelDeployment) -> None:
        orchestrator.interrupt(msg.deployment_id)
        orchestrator.wake_all()

    def wake(_: Message) -> None:
        orchestrator.wake_all()

    bus = ctx.bus
    await bus.consume(StartDeployment, _then(rt, h.on_start, kick, at_commit=True))
    await bus.consume(CancelDeployment, _then(rt, h.on_cancel, cancelled))
    await bus.consume(BuildSucceeded, _then(rt, h.on_build_succeeded, wake))
    await bus.consume(BuildFailed, _then(rt, h.on_build_failed, wake))
    await bus.consume(BuildCancelled, _then(rt, h.on_build_cancelled, wake))
    await bus.consume(RoutesApplied, _then(rt, h.on_route_applied, wake))
    await bus.consume(RouteRemoved, _then(rt, h.on_route_removed, wake))
    await bus.consume(RouteFailed, _then(rt, h.on_route_failed, wake))

    async def remove(msg: RemoveApplication, delivery: Delivery) -> None:
        """Record the removal; then interrupt the steps of the deployments it cancelled and wake the
        application's rollout task, which carries the removal out."""

        async def body(unit: Unit) -> list[str]:
            return await h.on_remove(msg, unit)

        cancelled = await rt.units.run(body, delivery=delivery)
        for deployment_id in cancelled or []:
            orchestrator.interrupt(deployment_id)
        orchestrator.kick(msg.application_id)

    await bus.consume(RemoveApplication, remove)

    async def replicas(data: dict[str, Any]) -> Any:
        return await replicas_of(rt, ReplicasQuery.model_validate(data).application_id)

    await bus.serve("replicas", replicas)
