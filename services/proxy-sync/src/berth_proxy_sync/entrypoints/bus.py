"""Bus consumers of the proxy-sync service: route commands, each idempotent, several at once.

Handlers of different routes run concurrently (up to ``route_concurrency``): each spends most of its time
waiting for Traefik to show its change, and changes written together are confirmed by the same reload.
Commands for one route never overlap: the handler holds that route's advisory lock (and the locks of the
hosts it claims) for its whole transaction, and a generation older than the stored one is refused.
"""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.db import idempotent
from berth_common.runtime import Context
from berth_proxy_sync.handlers import RouteHandlers


async def register(ctx: Context, handlers: RouteHandlers, concurrency: int = 1) -> None:
    await ctx.bus.consume(
        ApplyRoutes, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_apply), concurrency=concurrency
    )
    await ctx.bus.consume(
        RemoveRoute, idempotent(ctx.bus, ctx.sessionmaker, handlers.on_remove), concurrency=concurrency
    )
