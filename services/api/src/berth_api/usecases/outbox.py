"""A transaction whose commands and events go through the outbox (``Unit.emit``): published at the commit,
or by the relay when the bus is down (the use cases that send commands share it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from berth_api.usecases import Deps
from berth_common.db import Unit
from berth_common.db.unit import publish_staged, run_unit
from berth_common.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


async def run(deps: Deps, body: Callable[[Unit], Awaitable[T]]) -> T:
    """``run_unit``, except that a bus known to be down is not waited for: the relay publishes later."""
    if deps.bus.connected:
        result: T = await run_unit(deps.bus, deps.sessionmaker, body)
        return result
    async with deps.sessionmaker() as session:
        async with session.begin():
            unit = Unit(session=session, bus=deps.bus)
            result = await body(unit)
        if deps.bus.connected:  # it came back meanwhile
            await publish_staged(deps.bus, deps.sessionmaker, unit)
    log.warning("bus unavailable: the outbox relay will publish", ids=[env.id for _, env, _ in unit.staged])
    return result
