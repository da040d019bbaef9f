"""Bus consumers of the api: the deployment projection and the answers to removing an application (thin:
each runs a handler idempotently)."""

from __future__ import annotations

from berth_api.handlers import ApplicationRemoval, DeploymentProjection
from berth_common.catalogue import (
    ApplicationRemovalFailed,
    ApplicationRemovalProgressed,
    ApplicationRemoved,
    BuildSucceeded,
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
)
from berth_common.db import idempotent
from berth_common.runtime import Context


async def register(ctx: Context, projection: DeploymentProjection) -> None:
    bus, sm = ctx.bus, ctx.sessionmaker
    await bus.consume(DeploymentProgressed, idempotent(bus, sm, projection.on_progressed))
    await bus.consume(DeploymentSucceeded, idempotent(bus, sm, projection.on_succeeded))
    await bus.consume(DeploymentFailed, idempotent(bus, sm, projection.on_failed))
    await bus.consume(DeploymentCancelled, idempotent(bus, sm, projection.on_cancelled))
    await bus.consume(BuildSucceeded, idempotent(bus, sm, projection.on_build_succeeded))
    removal = ApplicationRemoval(projection)
    await bus.consume(ApplicationRemoved, idempotent(bus, sm, removal.on_removed))
    await bus.consume(ApplicationRemovalFailed, idempotent(bus, sm, removal.on_removal_failed))
    await bus.consume(ApplicationRemovalProgressed, idempotent(bus, sm, removal.on_removal_progressed))
