"""Bus consumers of the proxy-sync service: route commands, many in flight at once, coalesced per server;
the server directory (``evt.server.changed``), each message run once; uploaded certificates changed
(``evt.certificates.changed``: the routes serving their hosts applied again).

Up to ``route_concurrency`` commands of each route consumer are in flight: each handler hands its command to
the use case, which applies the commands of one server in batches (one transaction with their message ids,
one Traefik reload; ``usecases/routes.py`` says why that keeps the guarantees of ``consume_once``) and
returns once its command is answered, so the consumer acks it only after its change committed.
"""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, CertificatesChanged, RemoveRoute, ServerChanged
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context
from berth_proxy_sync.usecases.cert_refresh import CertificateRefresh
from berth_proxy_sync.usecases.routes import Routes
from berth_proxy_sync.usecases.sites import Sites


async def register(
    ctx: Context, routes: Routes, sites: Sites, concurrency: int = 1, refresh: CertificateRefresh | None = None
) -> None:
    transactions = Transactions(ctx.bus, ctx.sessionmaker)
    await ctx.bus.consume(ApplyRoutes, routes.apply, concurrency=concurrency)
    await ctx.bus.consume(RemoveRoute, routes.remove, concurrency=concurrency)
    if refresh is not None:  # its route commands run through the route batchers, like ``cmd.route.apply``
        await ctx.bus.consume(CertificatesChanged, refresh.refresh)
    await ctx.bus.consume(ServerChanged, consume_once(transactions, sites.changed))
