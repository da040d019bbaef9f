"""Which events a channel receives: ``rpc.notifier.subscription.create``, ``rpc.notifier.subscription.list``
and ``rpc.notifier.subscription.delete``.

A subscription lists event-type patterns (``evt.deployment.failed``, ``evt.container.*``, ``evt.alert.>``)
of the families the notifier receives, optionally narrowed to a project or an application.
"""

from __future__ import annotations

from berth_common.catalogue import (
    DeletedReply,
    SubscriptionCreate,
    SubscriptionDelete,
    SubscriptionList,
    SubscriptionListReply,
    SubscriptionReply,
)
from berth_notifier.adapters import store
from berth_notifier.domain.channels import FieldError
from berth_notifier.domain.policy import PatternError, check_pattern
from berth_notifier.domain.problems import not_found
from berth_notifier.usecases.deps import Deps


async def create(deps: Deps, req: SubscriptionCreate) -> SubscriptionReply:
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


async def list_all(deps: Deps, req: SubscriptionList) -> SubscriptionListReply:
    async with deps.sessionmaker() as s:
        return SubscriptionListReply(subscriptions=await store.list_subscriptions(s, req.team_id, req.channel_id))


async def delete(deps: Deps, req: SubscriptionDelete) -> DeletedReply:
    async with deps.sessionmaker() as s, s.begin():
        deleted = await store.delete_subscription(s, req.team_id, req.subscription_id)
    if not deleted:
        return DeletedReply(problem=not_found("subscription_id", "subscription"))
    return DeletedReply(deleted=True)
