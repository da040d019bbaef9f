"""Bus consumers of the builder service."""

from __future__ import annotations

from berth_builder.handlers import BuildHandler
from berth_common.catalogue import CancelBuild, StartBuild
from berth_common.runtime import Context


async def register(ctx: Context, handler: BuildHandler, consumers: int) -> None:
    """One pull subscription per build slot on the same durable consumer, each fetching one message at a
    time: a build never waits in a fetched batch (where its ack deadline would run) behind another."""
    for _ in range(consumers):
        await ctx.bus.consume(StartBuild, handler.on_start_build, batch=1)
    # cancels never wait behind builds: their own consumer, handled at once (recording a request is idempotent)
    await ctx.bus.consume(CancelBuild, handler.on_cancel_build)
