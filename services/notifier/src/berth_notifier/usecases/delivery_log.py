"""The delivery log: ``rpc.notifier.delivery.list``, a team's deliveries newest first, with their status,
attempts and last error (kept ``BERTH_NOTIFY_LOG_DAYS`` after they finish)."""

from __future__ import annotations

from berth_common.catalogue import DeliveryList, DeliveryListReply
from berth_notifier.adapters import queue
from berth_notifier.usecases.deps import Deps


async def list_all(deps: Deps, req: DeliveryList) -> DeliveryListReply:
    async with deps.sessionmaker() as s:
        return DeliveryListReply(deliveries=await queue.list_deliveries(s, req))
