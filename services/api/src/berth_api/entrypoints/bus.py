"""Bus consumers of the api: the deployment projection and the answers to removing an application (thin:
each runs a handler idempotently)."""

from __future__ import annotations

from berth_api.handlers import ApplicationRemoval, DeploymentProjection
from berth_common import catalogue as cat
from berth_common.db import idempotent
from berth_common.runtime import Context


async def register(ctx: Context, projection: DeploymentProjection) -> None:
    bus, sm = ctx.bus, ctx.sessionmaker
    await bus.consume(cat.DeploymentProgressed, idempotent(bus, sm, projection.on_progressed))
    await bus.consume(cat.DeploymentSucceeded, idempotent(bus, sm, projection.on_succeeded))
    await bus.consume(cat.DeploymentFailed, idempotent(bus, sm, projection.on_failed))
    await bus.consume(cat.DeploymentCancelled, idempotent(bus, sm, projection.on_cancelled))
    await bus.consume(cat.BuildSucceeded, idempotent(bus, sm, projection.on_build_succeeded))
    removal = ApplicationRemoval(projection)
    await bus.consume(cat.ApplicationRemoved, idempotent(bus, sm, removal.on_removed))
    await bus.consume(cat.ApplicationRemovalFailed, idempotent(bus, sm, removal.on_removal_failed))
    await bus.consume(cat.ApplicationRemovalProgressed, idempotent(bus, sm, removal.on_removal_progressed))
