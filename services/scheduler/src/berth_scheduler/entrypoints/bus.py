"""Bus consumers of the scheduler service: thin wrappers that run a handler idempotently, then wake rollouts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from berth_common.bus import Delivery
from berth_common.catalogue import (
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    Message,
    PingService,
    ReplicasQuery,
    RouteFailed,
    RouteRemoved,
    RoutesApplied,
    StartDeployment,
)
from berth_common.db import Unit, idempotent
from berth_common.runtime import Context
from berth_scheduler import handlers
from berth_scheduler.rollout.orchestrator import Orchestrator
from berth_scheduler.rollout.replicas import replicas_of
from berth_scheduler.rollout.runtime import Runtime


async def register(ctx: Context) -> None:
    await ctx.bus.consume(PingService, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_ping))


def _then(
    ctx: Context,
    handler: Callable[[Any, Unit], Awaitable[None]],
    after: Callable[[Any], None],
    *,
    at_commit: bool = False,
) -> Callable[[Any, Delivery], Awaitable[None]]:
    """Run ``handler`` idempotently; once its transaction committed, call ``after(message)``.

    ``at_commit``: also call it at the commit itself, before the handler's events are published (for an
    ``after`` that may run twice): a new deployment starts without waiting for those round trips.
    """
    if at_commit:
        inner = handler

        async def hooked(message: Any, unit: Unit) -> None:
            await inner(message, unit)
            event.listen(unit.session.sync_session, "after_commit", lambda _: after(message), once=True)

        hooked.__name__ = getattr(handler, "__name__", "handler")
        handler = hooked
    run = idempotent(ctx.bus, ctx.sessionmaker, handler)

    async def wrapped(message: Any, delivery: Delivery) -> None:
        await run(message, delivery)
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
    await bus.consume(StartDeployment, _then(ctx, h.on_start, kick, at_commit=True))
    await bus.consume(CancelDeployment, _then(ctx, h.on_cancel, cancelled))
    await bus.consume(BuildSucceeded, _then(ctx, h.on_build_succeeded, wake))
    await bus.consume(BuildFailed, _then(ctx, h.on_build_failed, wake))
    await bus.consume(RoutesApplied, _then(ctx, h.on_route_applied, wake))
    await bus.consume(RouteRemoved, _then(ctx, h.on_route_removed, wake))
    await bus.consume(RouteFailed, _then(ctx, h.on_route_failed, wake))

    async def replicas(data: dict[str, Any]) -> Any:
        return await replicas_of(rt, ReplicasQuery.model_validate(data).application_id)

    await bus.serve("replicas", replicas)
