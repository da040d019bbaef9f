"""Applications: taking a deployed application down (the api asks, the scheduler does it and answers), and
scaling its live version (the api or the metrics service's autoscaler asks, the scheduler does it).

``DELETE /v1/applications/{id}`` of an application that has deployments sends ``cmd.application.remove``;
the api keeps the application (state ``removing``, refusing deploys and changes) until the scheduler answers
``evt.application.removed`` (then it deletes its rows) or ``evt.application.removal_failed`` (then the
application is ``active`` again, with the reason); ``evt.application.removal_progressed`` reports each
phase on the way.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from berth_common.catalogue.base import Command, Event, Id, Query, register
from berth_common.catalogue.specs import Spec
from berth_common.values import Slug

# --- applications ----------------------------------------------------------------------------------


@register
class RemoveApplication(Command):
    """Take an application down, in this order: its queued deployments are cancelled and one not yet serving
    traffic is cancelled (a deployment past its switch finishes first); its routes are removed and Traefik
    confirms the hosts are gone; in-flight requests drain (``drain_grace_s``, default the scheduler's
    setting); every container of the application is stopped (SIGTERM, then SIGKILL after the stop timeout)
    and removed; the images built for it are removed. Its named volumes are kept unless ``delete_volumes``
    (then they are deleted on every server, last). Persisted and resumed after a restart; a redelivered or
    repeated command has no second effect. An application the scheduler never saw is removed at once."""

    TYPE = "cmd.application.remove"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    application_id: Id
    team_id: Id
    drain_grace_s: float | None = Field(default=None, ge=0, le=3600)
    delete_volumes: bool = Field(default=False, exclude_if=lambda v: not v)


RemovalPhase = Literal["routes", "restoring", "draining", "stopping", "images"]


class ApplicationRemovalEvent(Event):
    """Fields every ``evt.application.*`` event has (not a message by itself): the scheduler tells the api
    about the removal of one application."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    application_id: str
    team_id: str


@register
class ApplicationRemovalProgressed(ApplicationRemovalEvent):
    """The removal entered ``phase``: ``routes`` (Traefik is removing the hosts), ``draining`` (no host
    routes to it any more; in-flight requests finish), ``stopping`` (its containers get SIGTERM, then
    SIGKILL), ``images`` (its built images are removed), or ``restoring`` (a route removal was refused:
    the routes removed are put back, then ``removal_failed``). ``version`` grows with every step of every
    attempt, so a consumer keeps the highest it saw."""

    TYPE = "evt.application.removal_progressed"
    phase: RemovalPhase
    version: int = Field(ge=0)
    routes_removed: int = 0
    containers_removed: int = 0


@register
class ApplicationRemoved(ApplicationRemovalEvent):
    """No route, container or image of the application is left; its host names are free. Its named volumes
    are left unless the command asked to delete them (``volumes_removed``)."""

    TYPE = "evt.application.removed"
    routes_removed: int = 0
    containers_removed: int = 0
    images_removed: int = 0
    volumes_removed: int = Field(default=0, exclude_if=lambda v: not v)
    duration_s: float = 0.0


@register
class ApplicationRemovalFailed(ApplicationRemovalEvent):
    """The application could not be taken down (``reason`` says what to fix); what is still running keeps
    running and routed as before the command, and a new ``cmd.application.remove`` tries again."""

    TYPE = "evt.application.removal_failed"
    reason: str = Field(max_length=4000)


# --- scaling ---------------------------------------------------------------------------------------
# ``POST /v1/applications/{id}/scale`` (trigger ``manual``) and the metrics service's autoscaler (trigger
# ``auto``) ask the scheduler to change how many replicas of the live version run; it answers with one
# ``evt.application.scaled`` per service it changed (or could not change).

ScaleTrigger = Literal["manual", "auto"]
ReplicaCount = Annotated[int, Field(ge=1, le=64)]
MAX_SCALE_REASON = 500


@register
class ScaleApplication(Command):
    """Run ``services[name]`` replicas of each named service of the application's live version: new replicas
    start from the live deployment's image and spec and join the routes once ready; removed ones leave the
    routes first (confirmed), drain (``drain_grace_s``, default the scheduler's setting), then stop. Nothing
    is built or redeployed; a running deployment finishes first (and a deployment waits for a running
    scale). Persisted and resumed after a restart; ``request_id`` makes a repeated command a no-op."""

    TYPE = "cmd.application.scale"
    PRODUCERS = ("api", "metrics")
    CONSUMERS = ("scheduler",)
    application_id: Id
    team_id: Id
    request_id: Id
    services: dict[Slug, ReplicaCount] = Field(min_length=1, max_length=32)
    trigger: ScaleTrigger = "manual"
    reason: str = Field(default="", max_length=MAX_SCALE_REASON)
    drain_grace_s: float | None = Field(default=None, ge=0, le=3600)


@register
class ApplicationScaled(Event):
    """One service of the application runs ``to_replicas`` replicas of its live version instead of
    ``from_replicas`` (``outcome`` ``scaled``), or the scale was given up (``failed``: ``failure`` says why,
    and the service runs ``to_replicas``, what is left serving). ``reason`` is why it was asked (an
    autoscaler's decision in words, or what the person gave)."""

    TYPE = "evt.application.scaled"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    application_id: str
    team_id: str
    request_id: str
    service: str
    from_replicas: int = Field(ge=0)
    to_replicas: int = Field(ge=0)
    trigger: ScaleTrigger
    reason: str = Field(default="", max_length=MAX_SCALE_REASON)
    outcome: Literal["scaled", "failed"] = "scaled"
    failure: str | None = Field(default=None, max_length=4000)


class AutoscalePolicy(BaseModel):
    """Autoscaling of one web service: between ``min`` and ``max`` replicas, keeping the average CPU
    (``cpu_percent``, 100 = one core) or memory use (``memory_percent`` of the container's limit) of its
    replicas near the target; at most one change per ``cooldown_s``."""

    # exactly one target, for the OpenAPI (min <= max spans two fields: the validator alone says it)
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["cpu_percent"],
                    "properties": {"cpu_percent": {"type": "number"}, "memory_percent": {"type": "null"}},
                },
                {
                    "required": ["memory_percent"],
                    "properties": {"memory_percent": {"type": "number"}, "cpu_percent": {"type": "null"}},
                },
            ]
        },
    )

    min: ReplicaCount = 1
    max: ReplicaCount = 10
    cpu_percent: float | None = Field(default=None, gt=0, le=6400)
    memory_percent: float | None = Field(default=None, gt=0, le=100)
    cooldown_s: float = Field(default=120.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _one_target(self) -> AutoscalePolicy:
        if (self.cpu_percent is None) == (self.memory_percent is None):
            raise ValueError("give exactly one target: cpu_percent or memory_percent")
        if self.min > self.max:
            raise ValueError("min must not be above max")
        return self


@register
class AutoscaleChanged(Event):
    """The autoscaling of one web service as the api now has it (``policy`` None: off). ``revision`` grows
    with every change; a consumer keeps the highest it saw."""

    TYPE = "evt.application.autoscale_changed"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    application_id: Id
    team_id: Id
    service: Slug
    policy: AutoscalePolicy | None = None
    revision: int = Field(ge=0)


# --- volumes ---------------------------------------------------------------------------------------


@register
class VolumesQuery(Query):
    """``rpc.scheduler.volumes``: the named volumes of one application of the team on every server it runs
    (or ran) on, with their size as the engine counts it (``GET /system/df``)."""

    TYPE = "rpc.volumes"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    application_id: Id
    team_id: Id


class VolumeUsage(Spec):
    """One Docker volume of an application on one server; ``size_bytes`` None: the engine did not say."""

    server_id: str
    name: str  # the volume's name in the spec
    docker_name: str  # berth-<application id>-<name>
    size_bytes: int | None = None


class VolumesReply(Spec):
    application_id: str
    volumes: list[VolumeUsage] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list)  # servers that did not answer
