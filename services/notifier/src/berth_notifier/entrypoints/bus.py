"""Bus consumers and queries of the notifier service (thin: each makes one call into a use case).

The notifier consumes exactly the events the catalogue names it a consumer of (``consumed_by``), one
durable consumer per event type (new events only on first start), each message parsed as its catalogue
model; then it answers the queries of ``QUERIES`` on ``rpc.notifier.<name>``: each is parsed, handed to
its use case, and a refusal becomes a ``problem`` in the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from berth_common import catalogue
from berth_common.bus import Delivery, TransientError
from berth_common.catalogue import Event, Query, consumed_by
from berth_common.db import Unit, idempotent
from berth_common.logging import get_logger
from berth_common.runtime import Context
from berth_notifier import handlers
from berth_notifier.adapters import store
from berth_notifier.adapters.secretbox import SecretUnavailableError
from berth_notifier.domain.channels import FieldError
from berth_notifier.domain.problems import invalid, problem
from berth_notifier.usecases import channels, delivery_log, subscriptions
from berth_notifier.usecases.deps import Deps
from berth_notifier.usecases.notify import TeamUnknownError

log = get_logger(__name__)
UNKNOWN_TEAM_TRIES = 3  # with the bus backoff (0.5 s, 2 s) an out-of-order deployment event has arrived

QueryHandler = Callable[[Deps, Any], Awaitable[BaseModel]]
# Served on ``rpc.notifier.<name>`` (the query's type without ``rpc.``): query, reply, use case.
QUERIES: tuple[tuple[type[Query], type[BaseModel], QueryHandler], ...] = (
    (catalogue.ChannelCreate, catalogue.ChannelReply, channels.create),
    (catalogue.ChannelList, catalogue.ChannelListReply, channels.list_all),
    (catalogue.ChannelGet, catalogue.ChannelReply, channels.get),
    (catalogue.ChannelUpdate, catalogue.ChannelReply, channels.update),
    (catalogue.ChannelDelete, catalogue.DeletedReply, channels.delete),
    (catalogue.ChannelTest, catalogue.DeliveryReply, channels.send_test),
    (catalogue.SubscriptionCreate, catalogue.SubscriptionReply, subscriptions.create),
    (catalogue.SubscriptionList, catalogue.SubscriptionListReply, subscriptions.list_all),
    (catalogue.SubscriptionDelete, catalogue.DeletedReply, subscriptions.delete),
    (catalogue.DeliveryList, catalogue.DeliveryListReply, delivery_log.list_all),
)


async def register(ctx: Context, deps: Deps) -> None:
    """One durable consumer per event the notifier consumes, then the queries."""

    async def on_event(event: Event, delivery: Delivery) -> None:
        woken: list[str] = []

        async def body(_: Event, unit: Unit) -> None:
            woken.extend(await handlers.on_event(deps, event, delivery.envelope, unit))

        try:
            await idempotent(ctx.bus, ctx.sessionmaker, body)(event, delivery)
        except TeamUnknownError as exc:
            if delivery.attempt < UNKNOWN_TEAM_TRIES:
                raise TransientError(str(exc)) from None  # redelivered after the bus backoff
            log.info("event not notified", reason=str(exc), event_type=delivery.envelope.type)
            return
        deps.dispatcher.wake(woken)  # after commit: the rows are visible to the workers

    for model in consumed_by("notifier"):
        await ctx.bus.consume(model, on_event, new_only=True)
    for query, reply, handler in QUERIES:
        await ctx.bus.serve(query.TYPE.removeprefix("rpc."), endpoint(deps, query, reply, handler))


def endpoint(
    deps: Deps, model: type[Query], reply: type[BaseModel], handler: QueryHandler
) -> Callable[[dict[str, Any]], Awaitable[BaseModel]]:
    """Parse, run, and turn the known refusals into problems (422/404/409); the rest into a bare 500.

    A query is answered with a ``problem`` instead of raising, and never echoes an input value (it may be a
    secret).
    """

    async def handle(data: dict[str, Any]) -> BaseModel:
        try:
            req = model.model_validate(data)
        except ValidationError as exc:
            return reply.model_validate({"problem": invalid(exc)})
        try:
            return await handler(deps, req)
        except FieldError as exc:
            return reply.model_validate({"problem": problem(422, "invalid", "Invalid request", exc.field, exc.detail)})
        except store.ConflictError as exc:
            return reply.model_validate({"problem": problem(409, "conflict", "Conflict", exc.field, exc.detail)})
        except SecretUnavailableError:
            detail = "the channel's secrets cannot be decrypted with the configured keys; set them again"
            return reply.model_validate({"problem": problem(409, "secret-unavailable", "Conflict", "target", detail)})
        except Exception as exc:
            log.error("notifier query failed", query=model.TYPE, error=type(exc).__name__)
            return reply.model_validate({"problem": problem(500, "internal", "Internal error")})

    return handle
