"""Bus consumers and queries of the notifier service (thin: the work is in ``handlers``)."""

from __future__ import annotations

from typing import Any

from berth_common.bus import Delivery, TransientError
from berth_common.db import Unit, idempotent
from berth_common.logging import get_logger
from berth_common.runtime import Context
from berth_notifier import handlers
from berth_notifier.domain.policy import CONSUMED_SUBJECTS

log = get_logger(__name__)
UNKNOWN_TEAM_TRIES = 3  # with the bus backoff (0.5 s, 2 s) an out-of-order deployment event has arrived


async def register(ctx: Context, deps: handlers.Deps) -> None:
    """One durable consumer per event family (new events only on first start), then the queries."""

    async def on_event(message: Any, delivery: Delivery) -> None:
        woken: list[str] = []

        async def body(_: Any, unit: Unit) -> None:
            woken.extend(await handlers.on_event(deps, delivery.envelope, unit))

        try:
            await idempotent(ctx.bus, ctx.sessionmaker, body)(message, delivery)
        except handlers.TeamUnknownError as exc:
            if delivery.attempt < UNKNOWN_TEAM_TRIES:
                raise TransientError(str(exc)) from None  # redelivered after the bus backoff
            log.info("event not notified", reason=str(exc), event_type=delivery.envelope.type)
            return
        deps.dispatcher.wake(woken)  # after commit: the rows are visible to the workers

    for subject in CONSUMED_SUBJECTS:
        await ctx.bus.consume(subject, on_event, new_only=True)
    for name, handler in handlers.queries(deps).items():
        await ctx.bus.serve(name, handler)
