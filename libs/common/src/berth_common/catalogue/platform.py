"""The bus's own events, platform probes and health queries, and build/deploy log lines."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from berth_common.catalogue.base import Command, Event, Query, register

# --- bus -------------------------------------------------------------------------------------------


@register
class BusDeadLettered(Event):
    """A message failed every delivery attempt (or was not parseable) and was moved to ``dlq.<subject>``."""

    TYPE = "evt.bus.dead_lettered"
    PRODUCERS = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
    CONSUMERS = ("operator",)
    original_subject: str
    original_id: str | None = None
    consumer: str
    deliveries: int
    reason: str = Field(max_length=2000)


# --- platform --------------------------------------------------------------------------------------


@register
class PingService(Command):
    """Liveness probe through the work queue: the owning service records it and answers with an event."""

    TYPE = "cmd.system.ping"
    PRODUCERS = ("operator",)
    CONSUMERS = ("scheduler",)
    nonce: str = Field(min_length=1, max_length=64)


@register
class ServicePinged(Event):
    """The scheduler handled a ping command (proves the work queue and the outbox end to end)."""

    TYPE = "evt.system.pinged"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("operator",)
    nonce: str
    service: str


class HealthReply(BaseModel):
    """A service's readiness: bus and db connected, and any component of its own."""

    service: str
    ready: bool
    components: dict[str, bool]


@register
class HealthQuery(Query):
    """``rpc.<service>.health``: a service answers with its component readiness."""

    TYPE = "rpc.health"
    PRODUCERS = ("api",)
    CONSUMERS = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
    REPLY = HealthReply


# --- log lines (short-retention stream) -------------------------------------------------------------


@register
class LogLine(Event):
    """A line of build or deploy output; published on ``log.<deployment_id>`` rather than ``evt.``."""

    TYPE = "evt.log.line"
    PRODUCERS = ("builder", "scheduler")
    CONSUMERS = ("api",)
    deployment_id: str
    stream: Literal["build", "deploy"] = "build"
    seq: int = Field(ge=0)
    line: str = Field(max_length=16384)
