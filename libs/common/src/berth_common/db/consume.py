"""Consuming a message once, then acting after the commit: the one shape of every bus handler with state.

:func:`consume_once` turns ``handler(message, unit)`` into a bus handler. The handler runs in one
transaction that also records the message id for the consumer, so a redelivered message finds its id and
has no second effect; what the handler emits goes to the outbox and is published after the commit. Then
``after(message, result)`` runs: work that must see the committed rows but is no state of its own (wake a
task, signal a worker). It runs only once the transaction committed, never when the handler raised (the
transaction rolled back and the message is redelivered); for a redelivery of a message already consumed it
runs again with ``result`` None, so it must be harmless twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus.client import Bus
from berth_common.bus.consumer import Delivery
from berth_common.db.unit import Transactions, Unit

M = TypeVar("M")
R = TypeVar("R")


def consume_once(
    transactions: Transactions,
    handler: Callable[[M, Unit], Awaitable[R]],
    after: Callable[[M, R | None], None] | None = None,
    *,
    after_at_commit: bool = False,
) -> Callable[[M, Delivery], Awaitable[None]]:
    """A bus handler running ``handler`` once per message id, then ``after(message, result)``.

    ``after_at_commit``: ``after`` is also called at the commit itself, before what the handler emitted is
    published (for an ``after`` that starts work which should not wait for those round trips).
    """

    async def consumed(message: M, delivery: Delivery) -> None:
        async def body(unit: Unit) -> R:
            return await handler(message, unit)

        at_commit: Callable[[R], None] | None = None
        if after is not None and after_at_commit:
            act = after

            def at_commit(result: R) -> None:
                act(message, result)

        result = await transactions.run(body, delivery=delivery, on_commit=at_commit)
        if after is not None:
            after(message, result)

    consumed.__name__ = getattr(handler, "__name__", "handler")
    return consumed


def idempotent(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    handler: Callable[[Any, Unit], Awaitable[None]],
) -> Callable[[Any, Delivery], Awaitable[None]]:
    """``consume_once`` with the default transactions and nothing after the commit."""
    return consume_once(Transactions(bus, sessionmaker), handler)
