"""Routes of notification channels, subscriptions and the delivery log: each asks the notifier over the bus
(``rpc.notifier.<name>``) for the caller's team. Thin: role, input, query, answer."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import Body, Query, Request

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import IdFilter, PathId, Resource, V1Router
from berth_api.entrypoints.rpc_routes import answer_of, relayed_delete
from berth_api.entrypoints.schemas import Timestamp
from berth_api.entrypoints.schemas_notifications import (
    ChannelCreateIn,
    ChannelTestIn,
    ChannelUpdateIn,
    ChannelView,
    DeliveryView,
    SubscriptionCreateIn,
    SubscriptionView,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases.observability import NOTIFIER, Fields, ask, build, check_filters
from berth_common import catalogue as cat

UNAVAILABLE: Responses = {503: problem_doc("The notifier cannot be reached (down, or no answer in time)")}
NOT_FOUND: Responses = {404: problem_doc("No such channel or subscription in this team"), **UNAVAILABLE}
router = V1Router("notifications", NOT_FOUND)
CONFLICT: Responses = {409: problem_doc("The name is taken, or the channel's secrets cannot be read")}
relayed = Resource(router)

# Where each query field came from in the HTTP request (the rest is the body).
CHANNEL: Fields = {"channel_id": "/path/channel_id"}
LISTING: Fields = {
    "channel_id": "/query/channel_id",
    "status": "/query/status",
    "before": "/query/before",
    "limit": "/query/limit",
}


@router.create(
    "/notification-channels",
    operation_id="create_notification_channel",
    summary="Create a notification channel (Slack, Discord, email, Telegram or a signed webhook)",
    responses={**CONFLICT, **UNAVAILABLE},
)
async def create_channel(
    body: ChannelCreateIn, request: Request, principal: Principal = require_role("developer")
) -> ChannelView:
    q = build(cat.ChannelCreate, CHANNEL, team_id=principal.team_id, **body.model_dump(exclude_unset=True))
    return await answer_of(deps(request), NOTIFIER, q, cat.ChannelReply, lambda r: r.channel, fields=CHANNEL)


@router.get(
    "/notification-channels",
    operation_id="list_notification_channels",
    summary="The team's notification channels (secrets never shown)",
    responses=UNAVAILABLE,
)
async def list_channels(request: Request, principal: Principal = require_role("viewer")) -> list[ChannelView]:
    reply = await ask(
        deps(request), NOTIFIER, cat.ChannelList(team_id=principal.team_id), cat.ChannelListReply, fields={}
    )
    return reply.channels


@router.get(
    "/notification-channels/{channel_id}",
    operation_id="get_notification_channel",
    summary="A notification channel (secrets never shown)",
)
async def get_channel(
    request: Request, channel_id: PathId, principal: Principal = require_role("viewer")
) -> ChannelView:
    q = cat.ChannelGet(team_id=principal.team_id, channel_id=channel_id)
    return await answer_of(deps(request), NOTIFIER, q, cat.ChannelReply, lambda r: r.channel, fields=CHANNEL)


@router.patch(
    "/notification-channels/{channel_id}",
    operation_id="update_notification_channel",
    summary="Rename, enable or disable, or reconfigure a channel (same kind; omitted secrets are kept)",
    responses=CONFLICT,
)
async def update_channel(
    body: ChannelUpdateIn, request: Request, channel_id: PathId, principal: Principal = require_role("developer")
) -> ChannelView:
    values = body.model_dump(exclude_unset=True)
    q = build(cat.ChannelUpdate, CHANNEL, team_id=principal.team_id, channel_id=channel_id, **values)
    return await answer_of(deps(request), NOTIFIER, q, cat.ChannelReply, lambda r: r.channel, fields=CHANNEL)


@router.post(
    "/notification-channels/{channel_id}/test",
    operation_id="test_notification_channel",
    summary="Send a test message now; answers with its delivery once it is delivered or failed (or wait_s passed)",
    responses=CONFLICT,
)
async def test_channel(
    request: Request,
    channel_id: PathId,
    body: Annotated[ChannelTestIn | None, Body()] = None,
    principal: Principal = require_role("developer"),
) -> DeliveryView:
    wait_s = (body or ChannelTestIn()).wait_s
    q = cat.ChannelTest(team_id=principal.team_id, channel_id=channel_id, wait_s=wait_s)
    return await answer_of(
        deps(request), NOTIFIER, q, cat.DeliveryReply, lambda r: r.delivery, fields=CHANNEL, timeout=wait_s + 2.0
    )


@router.create(
    "/notification-channels/{channel_id}/subscriptions",
    operation_id="create_notification_subscription",
    summary="Send these event types to the channel, optionally only those of one project or application",
)
async def create_subscription(
    body: SubscriptionCreateIn,
    request: Request,
    channel_id: PathId,
    principal: Principal = require_role("developer"),
) -> SubscriptionView:
    d = deps(request)
    await check_filters(d, principal, body.project_id, body.application_id)
    values = body.model_dump(exclude_none=True)
    q = build(cat.SubscriptionCreate, CHANNEL, team_id=principal.team_id, channel_id=channel_id, **values)
    return await answer_of(d, NOTIFIER, q, cat.SubscriptionReply, lambda r: r.subscription, fields=CHANNEL)


@router.get(
    "/notification-subscriptions",
    operation_id="list_notification_subscriptions",
    summary="The team's subscriptions, optionally of one channel",
    responses=UNAVAILABLE,
)
async def list_subscriptions(
    request: Request,
    channel_id: IdFilter = None,
    principal: Principal = require_role("viewer"),
) -> list[SubscriptionView]:
    q = cat.SubscriptionList(team_id=principal.team_id, channel_id=channel_id)
    reply = await ask(deps(request), NOTIFIER, q, cat.SubscriptionListReply, fields=LISTING)
    return reply.subscriptions


relayed.delete(
    "/notification-channels/{channel_id}",
    "delete_notification_channel",
    relayed_delete(NOTIFIER, cat.ChannelDelete),
    "Delete a channel, its subscriptions and its delivery log",
)


relayed.delete(
    "/notification-subscriptions/{subscription_id}",
    "delete_notification_subscription",
    relayed_delete(NOTIFIER, cat.SubscriptionDelete),
    "Stop sending a subscription's events to its channel",
)


@router.get(
    "/notification-deliveries",
    operation_id="list_notification_deliveries",
    summary="The delivery log, newest first: status, attempts and last error of each message",
    responses=UNAVAILABLE,
)
async def list_deliveries(
    request: Request,
    channel_id: IdFilter = None,
    delivery_status: Annotated[cat.DeliveryStatus | None, Query(alias="status")] = None,
    before: Annotated[Timestamp | None, Query(description="Only deliveries created before this time")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require_role("viewer"),
) -> list[DeliveryView]:
    if before is not None and before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    values = {"channel_id": channel_id, "status": delivery_status, "before": before, "limit": limit}
    q = build(cat.DeliveryList, LISTING, team_id=principal.team_id, **values)
    reply = await ask(deps(request), NOTIFIER, q, cat.DeliveryListReply, fields=LISTING)
    return reply.deliveries
