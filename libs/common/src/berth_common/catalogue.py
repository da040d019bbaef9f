"""The message catalogue: every command, event and query on the bus, as a pydantic model.

Commands are imperative (``cmd.build.start``) and go to exactly one owning service through the work-queue
stream; events are past tense (``evt.build.succeeded``) and fan out to every subscriber; queries are core
NATS request/reply on ``rpc.<service>.<name>``. The AsyncAPI document is generated from this module.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    """Base for every catalogue entry."""

    model_config = ConfigDict(extra="forbid")

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "event"
    SCHEMA_VERSION: ClassVar[int] = 1
    PRODUCERS: ClassVar[tuple[str, ...]] = ()
    CONSUMERS: ClassVar[tuple[str, ...]] = ()


class Command(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "command"


class Event(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "event"


class Query(Message):
    KIND: ClassVar[Literal["command", "event", "query", "reply"]] = "query"


REGISTRY: dict[str, type[Message]] = {}


def register(cls: type[Message]) -> type[Message]:
    if not cls.TYPE:
        raise ValueError(f"{cls.__name__} has no TYPE")
    prefix = {"command": "cmd.", "event": "evt.", "query": "rpc.", "reply": "rpc."}[cls.KIND]
    if not cls.TYPE.startswith(prefix):
        raise ValueError(f"{cls.__name__}: a {cls.KIND} type must start with {prefix!r}")
    if cls.TYPE in REGISTRY:
        raise ValueError(f"duplicate message type {cls.TYPE}")
    REGISTRY[cls.TYPE] = cls
    return cls


def model_for(type_: str) -> type[Message]:
    try:
        return REGISTRY[type_]
    except KeyError:
        raise KeyError(f"unknown message type {type_!r}") from None


Id = Field(min_length=1, max_length=64)

# --- bus -------------------------------------------------------------------------------------------


@register
class BusDeadLettered(Event):
    """A message failed every delivery attempt (or was not parseable) and was moved to ``dlq.<subject>``."""

    TYPE = "evt.bus.dead_lettered"
    PRODUCERS = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
    CONSUMERS = ("notifier",)
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
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    nonce: str = Field(min_length=1, max_length=64)


@register
class ServicePinged(Event):
    TYPE = "evt.system.pinged"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    nonce: str
    service: str


@register
class HealthQuery(Query):
    """``rpc.<service>.health``: a service answers with its component readiness."""

    TYPE = "rpc.health"
    PRODUCERS = ("api", "cli")
    CONSUMERS = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")


class HealthReply(BaseModel):
    service: str
    ready: bool
    components: dict[str, bool]


# --- deployments -----------------------------------------------------------------------------------


@register
class StartDeployment(Command):
    TYPE = "cmd.deployment.start"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    deployment_id: str = Id
    application_id: str = Id
    team_id: str = Id


@register
class CancelDeployment(Command):
    TYPE = "cmd.deployment.cancel"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    deployment_id: str = Id


@register
class DeploymentQueued(Event):
    TYPE = "evt.deployment.queued"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    deployment_id: str
    application_id: str
    team_id: str


@register
class DeploymentProgressed(Event):
    TYPE = "evt.deployment.progressed"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    deployment_id: str
    step: str
    detail: str = ""


@register
class DeploymentSucceeded(Event):
    TYPE = "evt.deployment.succeeded"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    deployment_id: str
    application_id: str
    team_id: str
    image: str


@register
class DeploymentFailed(Event):
    TYPE = "evt.deployment.failed"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    deployment_id: str
    application_id: str
    team_id: str
    reason: str = Field(max_length=4000)


# --- builds ----------------------------------------------------------------------------------------


@register
class StartBuild(Command):
    TYPE = "cmd.build.start"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("builder",)
    build_id: str = Id
    deployment_id: str = Id
    repository: str = Field(max_length=2048)
    ref: str = Field(max_length=255)
    image_tag: str = Field(max_length=255)


@register
class BuildSucceeded(Event):
    TYPE = "evt.build.succeeded"
    PRODUCERS = ("builder",)
    CONSUMERS = ("scheduler",)
    build_id: str
    deployment_id: str
    image: str


@register
class BuildFailed(Event):
    TYPE = "evt.build.failed"
    PRODUCERS = ("builder",)
    CONSUMERS = ("scheduler", "notifier")
    build_id: str
    deployment_id: str
    reason: str = Field(max_length=4000)


# --- routes ----------------------------------------------------------------------------------------


@register
class ApplyRoutes(Command):
    TYPE = "cmd.route.apply"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    route_id: str = Id
    hosts: list[str]
    upstreams: list[str]


@register
class RoutesApplied(Event):
    TYPE = "evt.route.applied"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    live: bool


# --- containers and alerts -------------------------------------------------------------------------


@register
class ContainerCrashed(Event):
    TYPE = "evt.container.crashed"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    container_id: str
    application_id: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False


@register
class AlertRaised(Event):
    TYPE = "evt.alert.raised"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    rule_id: str
    target: str
    value: float
    threshold: float


@register
class AlertResolved(Event):
    TYPE = "evt.alert.resolved"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    rule_id: str
    target: str
    value: float


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
