"""Bus consumers of the proxy-sync service: route commands, each idempotent."""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.db import idempotent
from berth_common.runtime import Context
from berth_proxy_sync.handlers import RouteHandlers


async def register(ctx: Context, handlers: RouteHandlers) -> None:
    await ctx.bus.consume(ApplyRoutes, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_apply))
    await ctx.bus.consume(RemoveRoute, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_remove))
