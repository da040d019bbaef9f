"""Bus queries of runtime logs: an application's lines merged across its replicas and servers, and follows
that publish to the api's inbox (``usecases/runtime_logs.py``, ``usecases/log_follow.py``)."""

from __future__ import annotations

from typing import Any

from berth_common.catalogue import FollowLogsQuery, RuntimeLogsQuery
from berth_common.runtime import Context
from berth_scheduler.usecases.log_follow import Followers
from berth_scheduler.usecases.runtime_logs import runtime_logs


async def register(ctx: Context, fleet: Any, *, lines_per_s: float, alive_s: float, most: int) -> Followers:
    async def tail(data: dict[str, Any]) -> Any:
        return await runtime_logs(fleet, RuntimeLogsQuery.model_validate(data))

    followers = Followers(fleet, ctx.bus, lines_per_s=lines_per_s, alive_s=alive_s, most=most)

    async def follow(data: dict[str, Any]) -> Any:
        return await followers.start(FollowLogsQuery.model_validate(data))

    await ctx.bus.serve("runtime_logs", tail)
    await ctx.bus.serve("follow_logs", follow)
    return followers
