"""Bus consumer of restore drills: each message makes one call into the use case, which records the message
id with its answer."""

from __future__ import annotations

from berth_common.catalogue import DrillBackup
from berth_common.runtime import Context
from berth_scheduler.usecases.drills import Drills


async def register(ctx: Context, drills: Drills) -> None:
    await ctx.bus.consume(DrillBackup, drills.drill)
