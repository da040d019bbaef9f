"""Bus consumers of schedules: each message runs its use case once (``consume_once``)."""

from __future__ import annotations

from berth_common.catalogue import RemoveSchedule, SetSchedule
from berth_common.db import consume_once
from berth_common.runtime import Context
from berth_scheduler.usecases.schedules import Schedules


async def register(ctx: Context, schedules: Schedules) -> None:
    await ctx.bus.consume(SetSchedule, consume_once(schedules.transactions, schedules.set))
    await ctx.bus.consume(RemoveSchedule, consume_once(schedules.transactions, schedules.remove))
