"""Bus consumers of the scheduler service."""

from __future__ import annotations

from berth_common.catalogue import PingService
from berth_common.db import idempotent
from berth_common.runtime import Context
from berth_scheduler import handlers


async def register(ctx: Context) -> None:
    await ctx.bus.consume(PingService, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_ping))
