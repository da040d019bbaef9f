"""Bus entry points of the metrics service: its queries on ``rpc.metrics.<name>`` and the server directory
(``evt.server.changed``)."""

from __future__ import annotations

from functools import partial

from berth_common.catalogue import ServerChanged
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context
from berth_metrics.usecases import queries
from berth_metrics.usecases.fleet import Fleet
from berth_metrics.usecases.queries import Deps

QUERIES = {
    "query": queries.query,
    "alert_rule.create": queries.rule_create,
    "alert_rule.update": queries.rule_update,
    "alert_rule.list": queries.rule_list,
    "alert_rule.delete": queries.rule_delete,
    "alert.list": queries.alert_list,
}


async def register(ctx: Context, deps: Deps, fleet: Fleet) -> None:
    """Answer every query of the service (core NATS request/reply, queue group ``metrics``); keep the server
    directory."""
    for name, handler in QUERIES.items():
        await ctx.bus.serve(name, partial(handler, deps))
    await ctx.bus.consume(
        ServerChanged, consume_once(Transactions(ctx.bus, ctx.sessionmaker), fleet.changed, fleet.reread)
    )
