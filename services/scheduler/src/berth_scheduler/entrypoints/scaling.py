"""Bus consumer of ``cmd.application.scale``: records the scale once, then wakes the application's rollout task."""

from __future__ import annotations

from berth_common.catalogue import ScaleApplication
from berth_common.db import consume_once
from berth_common.runtime import Context
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.orchestrator import Orchestrator
from berth_scheduler.usecases.scaling import Scaling


async def register(ctx: Context, scaling: Scaling, orchestrator: Orchestrator, rt: RolloutContext) -> None:
    def kick(msg: ScaleApplication, _: None) -> None:
        orchestrator.kick(msg.application_id)

    await ctx.bus.consume(ScaleApplication, consume_once(rt.units, scaling.request, kick))
