"""Bus consumer of ``evt.application.autoscale_changed``: each announced policy is kept once."""

from __future__ import annotations

from berth_common.catalogue import AutoscaleChanged
from berth_common.db import Transactions, consume_once
from berth_common.runtime import Context
from berth_metrics.usecases.autoscale import Autoscaler


async def register(ctx: Context, autoscaler: Autoscaler) -> None:
    await ctx.bus.consume(AutoscaleChanged, consume_once(Transactions(ctx.bus, ctx.sessionmaker), autoscaler.changed))
