"""Bodies of notification channels, subscriptions and deliveries (the public contract, in the OpenAPI).

Requests are checked here with the same limits the notifier applies; answers are the notifier's views as
they are. A channel's secrets (webhook URLs, bot tokens, SMTP passwords, signing secrets) are write-only:
an answer names which are set (``secrets_set``) and where messages go (``target``), never their values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_common.catalogue import (
    NOTIFY_NAME_PATTERN,
    ChannelTarget,
    ChannelView,
    DeliveryView,
    SubscriptionView,
)

__all__ = [
    "ChannelCreateIn",
    "ChannelTestIn",
    "ChannelUpdateIn",
    "ChannelView",
    "DeliveryView",
    "SubscriptionCreateIn",
    "SubscriptionView",
]

EVENT_PATTERN = r"^evt(\.([a-z0-9_]{1,64}|\*))*(\.>)?$"
TARGET_DOC = (
    "Where messages go: `slack` (incoming webhook URL), `discord` (webhook URL), `email` (SMTP), "
    "`telegram` (bot token and chat), `webhook` (URL, HMAC signing secret). Secret fields are write-only."
)


class ChannelCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NOTIFY_NAME_PATTERN, max_length=63, description="Unique in the team")
    target: ChannelTarget = Field(description=TARGET_DOC)
    enabled: Flag = True


class ChannelUpdateIn(BaseModel):
    """Each field given replaces that field. A target of the same kind that omits a secret keeps it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NOTIFY_NAME_PATTERN, max_length=63)
    enabled: Flag | None = None
    target: ChannelTarget | None = Field(default=None, description=TARGET_DOC)


class ChannelTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wait_s: float = Field(default=3.0, ge=0, le=10, description="How long to wait for the outcome")


EventType = Annotated[str, Field(min_length=5, max_length=128, pattern=EVENT_PATTERN)]


class SubscriptionCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_types: list[EventType] = Field(
        min_length=1,
        max_length=32,
        description="`evt.deployment.failed`, `evt.container.*` (one token) or `evt.alert.>` (the rest)",
    )
    project_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Only events of this project")
    application_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Only events of this application")
