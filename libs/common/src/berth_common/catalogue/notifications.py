"""Notifications: channel and subscription management queries of the notifier."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from berth_common.catalogue.base import Id, Problem, TeamQuery, register
from berth_common.values import DNS_LABEL_PATTERN, DnsLabel

# --- notifications ---------------------------------------------------------------------------------
# Queries of the notifier on ``rpc.notifier.<name>`` (name = TYPE without ``rpc.``). Every query carries
# ``team_id`` and the notifier filters by it: another team's channel answers 404 exactly like a missing
# one. Secret fields (webhook URLs, bot tokens, SMTP passwords, signing secrets) are write-only: stored
# encrypted, never in a reply (only ``secrets_set`` and a ``target`` hint), an event or a log line. An
# update that omits a secret field keeps the stored value. Replies carry ``problem`` (RFC 9457 shaped:
# status 404/409/422 with the field) instead of raising, so the api maps them to problem+json as they are.


NOTIFY_NAME_PATTERN = DNS_LABEL_PATTERN
WRITE_ONLY: dict[str, Any] = {"writeOnly": True, "format": "password"}
DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]
# An address the notifier mails (its check, and the OpenAPI's pattern): 1-64 local characters, an '@', a host.
NOTIFY_EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
_EMAIL: dict[str, Any] = {"format": "email", "pattern": NOTIFY_EMAIL_PATTERN}


class NotifyTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlackTarget(NotifyTarget):
    """A Slack incoming webhook (Block Kit message)."""

    kind: Literal["slack"] = "slack"
    webhook_url: str | None = Field(default=None, max_length=2048, json_schema_extra=WRITE_ONLY)


class DiscordTarget(NotifyTarget):
    """A Discord channel webhook (embeds)."""

    kind: Literal["discord"] = "discord"
    webhook_url: str | None = Field(default=None, max_length=2048, json_schema_extra=WRITE_ONLY)
    username: str | None = Field(default=None, min_length=1, max_length=80)


class EmailTarget(NotifyTarget):
    """SMTP: ``starttls`` (port 587), ``tls`` (implicit, port 465) or ``plain`` (a local relay)."""

    kind: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "plain"] = "starttls"
    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=1024, json_schema_extra=WRITE_ONLY)
    from_addr: str = Field(min_length=3, max_length=254, json_schema_extra=_EMAIL)
    to_addrs: list[Annotated[str, Field(json_schema_extra=_EMAIL)]] = Field(min_length=1, max_length=50)


class TelegramTarget(NotifyTarget):
    """The Telegram bot API ``sendMessage`` to one chat (numeric id or ``@channel``)."""

    kind: Literal["telegram"] = "telegram"
    bot_token: str | None = Field(default=None, max_length=128, json_schema_extra=WRITE_ONLY)
    chat_id: str = Field(min_length=1, max_length=64)


class WebhookTarget(NotifyTarget):
    """A generic JSON webhook signed with ``X-Berth-Signature: sha256=<HMAC over "<timestamp>.<body>">``."""

    kind: Literal["webhook"] = "webhook"
    url: str | None = Field(default=None, max_length=2048, json_schema_extra=WRITE_ONLY)
    signing_secret: str | None = Field(default=None, max_length=256, json_schema_extra=WRITE_ONLY)


ChannelTarget = Annotated[
    SlackTarget | DiscordTarget | EmailTarget | TelegramTarget | WebhookTarget, Field(discriminator="kind")
]


class NotifyProblem(Problem):
    """Why a notifier query was refused; ``status`` is the HTTP status the api should answer with."""


class ChannelView(BaseModel):
    id: str
    team_id: str
    name: str
    kind: Literal["slack", "discord", "email", "telegram", "webhook"]
    enabled: bool
    settings: dict[str, Any]  # the non-secret part of the target
    secrets_set: list[str]  # names of the secret fields that hold a value (never the values)
    target: str  # a hint where messages go, without secrets: a host, an address, a chat
    created_at: datetime
    updated_at: datetime


class SubscriptionView(BaseModel):
    id: str
    team_id: str
    channel_id: str
    event_types: list[str]
    project_id: str | None = None
    application_id: str | None = None
    created_at: datetime


class DeliveryView(BaseModel):
    id: str
    team_id: str
    channel_id: str
    event_type: str
    title: str
    count: int  # events grouped into this message
    test: bool
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    created_at: datetime
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class ChannelReply(BaseModel):
    channel: ChannelView | None = None
    problem: NotifyProblem | None = None


class ChannelListReply(BaseModel):
    channels: list[ChannelView] = Field(default_factory=list)
    problem: NotifyProblem | None = None


class SubscriptionReply(BaseModel):
    subscription: SubscriptionView | None = None
    problem: NotifyProblem | None = None


class SubscriptionListReply(BaseModel):
    subscriptions: list[SubscriptionView] = Field(default_factory=list)
    problem: NotifyProblem | None = None


class DeliveryReply(BaseModel):
    delivery: DeliveryView | None = None
    problem: NotifyProblem | None = None


class DeliveryListReply(BaseModel):
    deliveries: list[DeliveryView] = Field(default_factory=list)
    problem: NotifyProblem | None = None


class DeletedReply(BaseModel):
    deleted: bool = False
    problem: NotifyProblem | None = None


class NotifierQuery(TeamQuery):
    """A query of the notifier about a team's channels, subscriptions or deliveries (not a message by itself)."""

    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)


class ChannelQuery(NotifierQuery):
    """Fields every query about one channel has (not a message by itself)."""

    channel_id: Id


@register
class ChannelCreate(NotifierQuery):
    """``rpc.notifier.channel.create``: a team's notification channel (secrets encrypted at rest)."""

    TYPE = "rpc.channel.create"
    REPLY = ChannelReply
    name: DnsLabel
    target: ChannelTarget
    enabled: bool = True


@register
class ChannelList(NotifierQuery):
    """``rpc.notifier.channel.list``: a team's channels, secrets masked."""

    TYPE = "rpc.channel.list"
    REPLY = ChannelListReply


@register
class ChannelGet(ChannelQuery):
    """``rpc.notifier.channel.get``: one channel of the team, secrets masked."""

    TYPE = "rpc.channel.get"
    REPLY = ChannelReply


@register
class ChannelUpdate(ChannelQuery):
    """``rpc.notifier.channel.update``: rename, enable/disable or reconfigure (same kind) a channel."""

    TYPE = "rpc.channel.update"
    REPLY = ChannelReply
    name: DnsLabel | None = None
    enabled: bool | None = None
    target: ChannelTarget | None = None


@register
class ChannelDelete(ChannelQuery):
    """``rpc.notifier.channel.delete``: remove a channel, its subscriptions and its delivery log."""

    TYPE = "rpc.channel.delete"
    REPLY = DeletedReply


@register
class ChannelTest(ChannelQuery):
    """``rpc.notifier.channel.test``: send a test message now; waits up to ``wait_s`` for the outcome."""

    TYPE = "rpc.channel.test"
    REPLY = DeliveryReply
    wait_s: float = Field(default=3.0, ge=0, le=10)


@register
class SubscriptionCreate(ChannelQuery):
    """``rpc.notifier.subscription.create``: event types (``evt.x.y``, ``evt.x.*``, ``evt.x.>``) for a channel."""

    TYPE = "rpc.subscription.create"
    REPLY = SubscriptionReply
    event_types: list[str] = Field(min_length=1, max_length=32)
    project_id: Id | None = None
    application_id: Id | None = None


@register
class SubscriptionList(NotifierQuery):
    """``rpc.notifier.subscription.list``: a team's subscriptions, optionally of one channel."""

    TYPE = "rpc.subscription.list"
    REPLY = SubscriptionListReply
    channel_id: Id | None = None


@register
class SubscriptionDelete(NotifierQuery):
    """``rpc.notifier.subscription.delete``: stop sending these events to the channel."""

    TYPE = "rpc.subscription.delete"
    REPLY = DeletedReply
    subscription_id: Id


@register
class DeliveryList(NotifierQuery):
    """``rpc.notifier.delivery.list``: the delivery log, newest first (status, attempts, last error)."""

    TYPE = "rpc.delivery.list"
    REPLY = DeliveryListReply
    channel_id: Id | None = None
    status: DeliveryStatus | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: datetime | None = None  # page: deliveries created strictly before this time
