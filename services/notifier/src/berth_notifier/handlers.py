"""Handlers of the notifier service: the event -> deliveries step, and the channel queries.

Queries answer with a ``problem`` instead of raising, and never echo an input value (it may be a secret).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.catalogue import (
    ChannelCreate,
    ChannelDelete,
    ChannelGet,
    ChannelList,
    ChannelListReply,
    ChannelReply,
    ChannelTest,
    ChannelUpdate,
    DeletedReply,
    DeliveryList,
    DeliveryListReply,
    DeliveryReply,
    NotifyProblem,
    Query,
    SubscriptionCreate,
    SubscriptionDelete,
    SubscriptionList,
    SubscriptionListReply,
    SubscriptionReply,
)
from berth_common.db import Unit
from berth_common.envelope import Envelope, new_id
from berth_common.logging import get_logger
from berth_notifier.adapters import queue, store
from berth_notifier.adapters.dispatcher import Dispatcher
from berth_notifier.adapters.queue import Grouping
from berth_notifier.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_notifier.domain.channels import FieldError
from berth_notifier.domain.notice import probe_notice, render
from berth_notifier.domain.policy import PatternError, check_pattern, group_key, notifiable, worth_notifying
from berth_notifier.settings import NotifierSettings

log = get_logger(__name__)
Q = TypeVar("Q", bound=Query)
R = TypeVar("R", bound=BaseModel)


class TeamUnknownError(LookupError):
    """The event names an application whose team the notifier has not learned (yet)."""


@dataclass
class Deps:
    settings: NotifierSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    dispatcher: Dispatcher


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- events -> deliveries -----------------------------------------------------------------------------


async def on_event(deps: Deps, envelope: Envelope, unit: Unit) -> list[str]:
    """Queue the event on every subscribed channel of its team; returns the channels to wake."""
    event_type, data = envelope.type, envelope.data
    if not notifiable(event_type) or not worth_notifying(event_type, data):
        return []
    now = datetime.now(UTC)
    if (now - envelope.time).total_seconds() > deps.settings.notify_max_event_age_s:
        log.info("event too old to notify", event_type=event_type, event_id=envelope.id)
        return []
    session = unit.session
    app_id, team_id = _str(data.get("application_id")), _str(data.get("team_id"))
    if app_id and team_id:
        await store.remember_application(session, app_id, team_id, _str(data.get("project_id")))
    context = await store.application_context(session, app_id) if app_id else {}
    team_id = team_id or context.get("team_id")
    # An event of one team names it; a server event names every team with containers on that server.
    teams = [team_id] if team_id else _teams(data.get("team_ids"))
    if not teams:
        if app_id:  # its deployment event may simply not be processed yet (another consumer)
            raise TeamUnknownError(f"no team known for application {app_id}")
        log.info("event names no team; nobody to notify", event_type=event_type, event_id=envelope.id)
        return []
    project_id = _str(data.get("project_id")) or context.get("project_id")
    key, groupable = group_key(event_type, data, envelope.id)
    group = Grouping(key, groupable, deps.settings.notify_group_wait_s, deps.settings.notify_group_interval_s)
    woken: list[str] = []
    for team in teams:
        channel_ids = await store.matching_channels(session, team, event_type, project_id, app_id)
        if not channel_ids:
            continue
        notice = render(
            event_type,
            data,
            event_id=envelope.id,
            time=envelope.time,
            public_url=deps.settings.public_url,
            context={**context, "team_id": team},
        )
        await queue.enqueue(
            session,
            team_id=team,
            channel_ids=channel_ids,
            notice=notice,
            group=group,
            max_attempts=deps.settings.notify_max_attempts,
            now=now,
        )
        woken += channel_ids
    return woken


def _teams(value: Any, limit: int = 100) -> list[str]:
    """The distinct team ids of a ``team_ids`` list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(t for t in value if isinstance(t, str) and t))[:limit]


# --- queries ------------------------------------------------------------------------------------------


def problem(status: int, type_: str, title: str, field: str | None = None, detail: str = "") -> NotifyProblem:
    return NotifyProblem(status=status, type=type_, title=title, field=field, detail=detail)


def not_found(field: str, what: str) -> NotifyProblem:
    return problem(404, "not-found", "Not found", field, f"no such {what}")


def invalid(exc: ValidationError) -> NotifyProblem:
    """The first error, its field path and message; never the input value."""
    err = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return problem(422, "invalid", "Invalid request", field, str(err["msg"])[:300])


def endpoint(
    deps: Deps, model: type[Q], reply: type[R], body: Callable[[Deps, Q], Awaitable[R]]
) -> Callable[[dict[str, Any]], Awaitable[BaseModel]]:
    """Parse, run, and turn the known refusals into problems (422/404/409); the rest into a bare 500."""

    async def handle(data: dict[str, Any]) -> BaseModel:
        try:
            req = model.model_validate(data)
        except ValidationError as exc:
            return reply.model_validate({"problem": invalid(exc)})
        try:
            return await body(deps, req)
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


async def channel_create(deps: Deps, req: ChannelCreate) -> ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        return ChannelReply(channel=await store.create_channel(s, deps.box, req))


async def channel_list(deps: Deps, req: ChannelList) -> ChannelListReply:
    async with deps.sessionmaker() as s:
        return ChannelListReply(channels=await store.list_channels(s, req.team_id))


async def channel_get(deps: Deps, req: ChannelGet) -> ChannelReply:
    async with deps.sessionmaker() as s:
        row = await store.get_channel(s, req.team_id, req.channel_id)
    if row is None:
        return ChannelReply(problem=not_found("channel_id", "channel"))
    return ChannelReply(channel=store.channel_view(row))


async def channel_update(deps: Deps, req: ChannelUpdate) -> ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        view = await store.update_channel(s, deps.box, req)
    if view is None:
        return ChannelReply(problem=not_found("channel_id", "channel"))
    return ChannelReply(channel=view)


async def channel_delete(deps: Deps, req: ChannelDelete) -> DeletedReply:
    async with deps.sessionmaker() as s, s.begin():
        deleted = await store.delete_channel(s, req.team_id, req.channel_id)
    if not deleted:
        return DeletedReply(problem=not_found("channel_id", "channel"))
    return DeletedReply(deleted=True)


async def channel_test(deps: Deps, req: ChannelTest) -> DeliveryReply:
    """Queue a test message (one attempt, not grouped), wake the channel, wait for the outcome."""
    now = datetime.now(UTC)
    event_id = f"test-{new_id()}"
    async with deps.sessionmaker() as s, s.begin():
        row = await store.get_channel(s, req.team_id, req.channel_id)
        if row is None:
            return DeliveryReply(problem=not_found("channel_id", "channel"))
        notice = probe_notice(
            event_id=event_id,
            time=now,
            public_url=deps.settings.public_url,
            team_id=req.team_id,
            channel_name=row.name,
        )
        ids = await queue.enqueue(
            s,
            team_id=req.team_id,
            channel_ids=[row.id],
            notice=notice,
            group=Grouping(f"test:{event_id}", False, 0.0, 0.0),
            max_attempts=1,
            now=now,
            is_test=True,
        )
    deps.dispatcher.wake([req.channel_id])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.wait_s
    while True:
        async with deps.sessionmaker() as s:
            view = await queue.get_delivery(s, req.team_id, ids[0])
        if view is None or view.status in ("delivered", "failed") or loop.time() >= deadline:
            return DeliveryReply(delivery=view)
        await asyncio.sleep(0.05)


async def subscription_create(deps: Deps, req: SubscriptionCreate) -> SubscriptionReply:
    for i, pattern in enumerate(req.event_types):
        try:
            check_pattern(pattern)
        except PatternError as exc:
            raise FieldError(f"event_types.{i}", str(exc)) from None
    async with deps.sessionmaker() as s, s.begin():
        view = await store.create_subscription(s, req)
    if view is None:
        return SubscriptionReply(problem=not_found("channel_id", "channel"))
    return SubscriptionReply(subscription=view)


async def subscription_list(deps: Deps, req: SubscriptionList) -> SubscriptionListReply:
    async with deps.sessionmaker() as s:
        return SubscriptionListReply(subscriptions=await store.list_subscriptions(s, req.team_id, req.channel_id))


async def subscription_delete(deps: Deps, req: SubscriptionDelete) -> DeletedReply:
    async with deps.sessionmaker() as s, s.begin():
        deleted = await store.delete_subscription(s, req.team_id, req.subscription_id)
    if not deleted:
        return DeletedReply(problem=not_found("subscription_id", "subscription"))
    return DeletedReply(deleted=True)


async def delivery_list(deps: Deps, req: DeliveryList) -> DeliveryListReply:
    async with deps.sessionmaker() as s:
        return DeliveryListReply(deliveries=await queue.list_deliveries(s, req))


def queries(deps: Deps) -> dict[str, Callable[[dict[str, Any]], Awaitable[BaseModel]]]:
    """Served names (``rpc.notifier.<name>``) -> handlers."""
    table: list[tuple[type[Any], type[Any], Callable[[Deps, Any], Awaitable[Any]]]] = [
        (ChannelCreate, ChannelReply, channel_create),
        (ChannelList, ChannelListReply, channel_list),
        (ChannelGet, ChannelReply, channel_get),
        (ChannelUpdate, ChannelReply, channel_update),
        (ChannelDelete, DeletedReply, channel_delete),
        (ChannelTest, DeliveryReply, channel_test),
        (SubscriptionCreate, SubscriptionReply, subscription_create),
        (SubscriptionList, SubscriptionListReply, subscription_list),
        (SubscriptionDelete, DeletedReply, subscription_delete),
        (DeliveryList, DeliveryListReply, delivery_list),
    ]
    return {model.TYPE.removeprefix("rpc."): endpoint(deps, model, reply, body) for model, reply, body in table}
