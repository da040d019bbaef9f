"""Bus consumers of the proxy-sync service: route commands, each run once per message, several at once; the
server directory (``evt.server.changed``).

Commands of different routes run concurrently (up to ``route_concurrency``): each spends most of its time
waiting for Traefik to show its change, and changes written together are confirmed by the same reload.
Commands for one route never overlap: the use case holds that route's advisory lock (and the locks of the
hosts it claims) for its whole transaction, and a generation older than the stored one is refused.
"""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, RemoveRoute, ServerChanged
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context
from berth_proxy_sync.usecases.routes import Routes
from berth_proxy_sync.usecases.sites import Sites


async def register(ctx: Context, routes: Routes, sites: Sites, concurrency: int = 1) -> None:
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    await ctx.bus.consume(ApplyRoutes, consume_once(transactions, routes.apply), concurrency=concurrency)
    await ctx.bus.consume(RemoveRoute, consume_once(transactions, routes.remove), concurrency=concurrency)
    await ctx.bus.consume(ServerChanged, consume_once(transactions, sites.changed))
