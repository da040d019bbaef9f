"""Bus entry points of the metrics service: its queries on ``rpc.metrics.<name>``."""

from __future__ import annotations

from functools import partial

from berth_common.runtime import Context
from berth_metrics import handlers
from berth_metrics.handlers import Deps

QUERIES = {
    "query": handlers.query,
    "alert_rule.create": handlers.rule_create,
    "alert_rule.update": handlers.rule_update,
    "alert_rule.list": handlers.rule_list,
    "alert_rule.delete": handlers.rule_delete,
    "alert.list": handlers.alert_list,
}


async def register(ctx: Context, deps: Deps) -> None:
    """Answer every query of the service (core NATS request/reply, queue group ``metrics``)."""
    for name, handler in QUERIES.items():
        await ctx.bus.serve(name, partial(handler, deps))
