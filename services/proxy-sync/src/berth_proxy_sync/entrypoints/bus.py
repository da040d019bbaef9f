"""Bus consumers of the proxy-sync service: route commands, many in flight at once, coalesced per site.

Up to ``route_concurrency`` commands of each consumer are in flight: each handler hands its command to the
use case, which applies the commands of one site in batches (one transaction with their message ids, one
Traefik reload; ``usecases/routes.py`` says why that keeps the guarantees of ``consume_once``) and returns
once its command is answered, so the consumer acks it only after its change committed.
"""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.runtime import Context
from berth_proxy_sync.usecases.routes import Routes


async def register(ctx: Context, routes: Routes, concurrency: int = 1) -> None:
    await ctx.bus.consume(ApplyRoutes, routes.apply, concurrency=concurrency)
    await ctx.bus.consume(RemoveRoute, routes.remove, concurrency=concurrency)
