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
    # For queries: the model of the reply (documented in the AsyncAPI document).
    REPLY: ClassVar[type[BaseModel] | None] = None


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
    """The scheduler handled a ping command (proves the work queue and the outbox end to end)."""

    TYPE = "evt.system.pinged"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
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
    PRODUCERS = ("api", "cli")
    CONSUMERS = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")
    REPLY = HealthReply


# --- deployments -----------------------------------------------------------------------------------
# The api owns an application's desired state and sends a snapshot of it in ``cmd.deployment.start``;
# the scheduler never reads the api's tables. Secret values (``EnvVar.secret``) print as ``**********`` in
# repr, str, logs and python dumps; only the JSON that carries the command reveals them.

from typing import Annotated  # noqa: E402

from pydantic import SecretStr, field_serializer, model_validator  # noqa: E402

DEPLOYMENT_STATES = (
    "queued",
    "building",
    "starting",
    "verifying",
    "routing",
    "draining",
    "stopping_old",
    "succeeded",
    "failed",
    "cancelled",
)
DeploymentState = Literal[
    "queued",
    "building",
    "starting",
    "verifying",
    "routing",
    "draining",
    "stopping_old",
    "succeeded",
    "failed",
    "cancelled",
]
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
IMAGE_REF_PATTERN = r"^[a-z0-9][a-z0-9._/:@-]{0,254}$"
HEALTH_PATH_PATTERN = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}$"


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvVar(Spec):
    """A runtime variable or build argument; ``secret`` ones are never logged, emitted or shown."""

    name: str = Field(pattern=ENV_NAME_PATTERN)
    value: SecretStr = Field(max_length=65536)
    secret: bool = False

    @field_serializer("value", when_used="json")
    def _reveal_on_the_wire(self, value: SecretStr) -> str:
        return value.get_secret_value()


class ImageSource(Spec):
    """Run a prebuilt image (also how a rollback names a previous deployment's image: no rebuild)."""

    kind: Literal["image"] = "image"
    image: str = Field(pattern=IMAGE_REF_PATTERN)


class GitSource(Spec):
    """Build from a git repository (the builder validates the URL, ref and paths)."""

    kind: Literal["git"] = "git"
    repository: str = Field(min_length=1, max_length=2048)
    ref: str = Field(min_length=1, max_length=255)
    subdirectory: str = Field(default="", max_length=1024)
    dockerfile: str | None = Field(default="Dockerfile", max_length=1024)  # None: Berth's own detection
    build_args: list[EnvVar] = Field(default_factory=list, max_length=200)


class ResourceLimits(Spec):
    cpus: float | None = Field(default=None, gt=0, le=512)  # CPU cores -> HostConfig.NanoCpus
    memory_mb: int | None = Field(default=None, ge=6, le=4_194_304)  # -> HostConfig.Memory (bytes)


class WebService(Spec):
    kind: Literal["web"] = "web"
    name: str = Field(pattern=SLUG_PATTERN)
    port: int = Field(ge=1, le=65535)
    replicas: int = Field(default=1, ge=1, le=64)
    health_path: str = Field(default="/", pattern=HEALTH_PATH_PATTERN)
    command: list[str] | None = Field(default=None, max_length=256)  # None: the image's CMD
    hosts: list[str] = Field(default_factory=list, max_length=100)  # generated + custom, lowercased
    limits: ResourceLimits | None = None  # None: the application's


class WorkerService(Spec):
    kind: Literal["worker"] = "worker"
    name: str = Field(pattern=SLUG_PATTERN)
    replicas: int = Field(default=1, ge=1, le=64)
    command: list[str] | None = Field(default=None, max_length=256)
    health_command: list[str] | None = Field(default=None, max_length=256)  # None: running and not restarting
    limits: ResourceLimits | None = None


class ApplicationSpec(Spec):
    """Snapshot of an application's desired state at the time of a deployment."""

    name: str = Field(pattern=SLUG_PATTERN)  # used in container names: berth-<name>-<service>-<dep>-<n>
    environment: str = Field(default="production", pattern=SLUG_PATTERN)
    source: Annotated[ImageSource | GitSource, Field(discriminator="kind")]
    services: list[Annotated[WebService | WorkerService, Field(discriminator="kind")]] = Field(
        min_length=1, max_length=20
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=500)
    limits: ResourceLimits = ResourceLimits()
    restart_policy: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    stop_timeout_s: int = Field(default=10, ge=0, le=3600)  # SIGTERM, then SIGKILL after this
    network: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")

    @model_validator(mode="after")
    def _unique_names(self) -> ApplicationSpec:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        env_names = [e.name for e in self.env]
        if len(set(env_names)) != len(env_names):
            raise ValueError("environment variable names must be unique")
        return self

    def secret_values(self) -> list[str]:
        """Every secret value (runtime and build), to redact from any text the scheduler emits."""
        found = [e.value.get_secret_value() for e in self.env if e.secret]
        if isinstance(self.source, GitSource):
            found += [a.value.get_secret_value() for a in self.source.build_args if a.secret]
        return [v for v in found if v]


class RolloutOptions(Spec):
    """Per-deployment overrides of the scheduler's defaults (``None``: the scheduler setting)."""

    drain_grace_s: float | None = Field(default=None, ge=0, le=3600)
    readiness_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    build_timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)
    # A deployment arriving while another of the same application runs: wait behind it, or cancel the
    # deployments still queued (not yet started) for that application and take their place.
    when_busy: Literal["queue", "replace_queued"] = "queue"


@register
class StartDeployment(Command):
    TYPE = "cmd.deployment.start"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    deployment_id: str = Id
    application_id: str = Id
    team_id: str = Id
    spec: ApplicationSpec
    options: RolloutOptions = RolloutOptions()


@register
class CancelDeployment(Command):
    """Cancel a queued deployment, or one not yet serving traffic (building, starting, verifying, routing)."""

    TYPE = "cmd.deployment.cancel"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    deployment_id: str = Id
    reason: str = Field(default="cancelled by user", max_length=500)


@register
class DeploymentQueued(Event):
    """The api recorded a deployment and asked the scheduler to run it."""

    TYPE = "evt.deployment.queued"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    deployment_id: str
    application_id: str
    team_id: str


@register
class DeploymentProgressed(Event):
    """Every step of a rollout; ``state`` is the persisted state, ``step`` what just happened."""

    TYPE = "evt.deployment.progressed"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    deployment_id: str
    application_id: str = ""
    state: DeploymentState = "queued"
    step: str
    detail: str = Field(default="", max_length=4000)


class Replica(Spec):
    """One running container of a deployment (no environment, no secrets)."""

    service: str
    kind: Literal["web", "worker"]
    replica: int
    container: str  # the container name
    upstream: str | None = None  # web: http://127.0.0.1:<host port>


@register
class DeploymentSucceeded(Event):
    """The new version serves all traffic; the previous version's containers are stopped and removed."""

    TYPE = "evt.deployment.succeeded"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    deployment_id: str
    application_id: str
    team_id: str
    image: str
    previous_deployment_id: str | None = None
    duration_s: float = 0.0  # from the start command's arrival to success (a rollback's time, too)
    replicas: list[Replica] = Field(default_factory=list)


@register
class DeploymentFailed(Event):
    """The new containers are removed, the routes are as before, the previous version keeps serving."""

    TYPE = "evt.deployment.failed"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    deployment_id: str
    application_id: str
    team_id: str
    reason: str = Field(max_length=4000)
    failed_in: DeploymentState | None = None  # the state the deployment was in when it failed
    duration_s: float = 0.0


@register
class DeploymentCancelled(Event):
    """Cancelled before serving traffic: its containers are removed, the previous version keeps serving."""

    TYPE = "evt.deployment.cancelled"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")
    deployment_id: str
    application_id: str
    team_id: str
    reason: str = Field(default="", max_length=500)
    cancelled_in: DeploymentState | None = None


@register
class ReplicasQuery(Query):
    """``rpc.scheduler.replicas``: an application's containers as Docker sees them now."""

    TYPE = "rpc.replicas"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    application_id: str = Id


class ReplicaStatus(Spec):
    deployment_id: str
    service: str
    replica: int
    container: str
    state: str  # docker's: running, restarting, exited, ...
    health: Literal["ready", "unready", "unknown"] = "unknown"
    restarts: int = 0
    upstream: str | None = None


class ReplicasReply(Spec):
    application_id: str
    live_deployment_id: str | None = None
    replicas: list[ReplicaStatus] = Field(default_factory=list)


# --- builds ----------------------------------------------------------------------------------------
# The scheduler asks the builder for an image from a ``GitSource`` snapshot. The builder validates every
# URL, ref and path before any git process runs, streams its output as ``LogLine`` on
# ``log.<deployment_id>`` and answers with exactly one of the two events (a redelivered command for a
# finished build re-emits the same result). Secret build args never reach a log line, an event or a layer.

BUILD_FAILURE_STAGES = ("source", "clone", "dockerfile", "build", "internal")
BuildFailureStage = Literal["source", "clone", "dockerfile", "build", "internal"]


@register
class StartBuild(Command):
    """Clone ``source`` (shallow, with a timeout) and build it into ``image_tag`` through the Docker API."""

    TYPE = "cmd.build.start"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("builder",)
    build_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    deployment_id: str = Id
    application_id: str = Id
    source: GitSource
    image_tag: str = Field(pattern=IMAGE_REF_PATTERN)  # e.g. berth/<app>:<deployment>
    no_cache: bool = False
    timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)  # None: the builder's setting


@register
class BuildSucceeded(Event):
    """``image`` exists on the build host; ``reused``: tagged from an earlier build of the same inputs."""

    TYPE = "evt.build.succeeded"
    PRODUCERS = ("builder",)
    CONSUMERS = ("scheduler",)
    build_id: str
    deployment_id: str
    application_id: str = ""
    image: str  # the tag asked for (``image_tag``), now pointing at ``image_id``
    image_id: str = ""
    commit: str = ""  # the resolved commit sha
    reused: bool = False  # an image built earlier from the same commit and inputs was tagged again
    generated_dockerfile: str | None = Field(default=None, max_length=65536)  # Berth's detection, if used
    duration_s: float = 0.0


@register
class BuildFailed(Event):
    """``reason`` is for a person: what failed and what to do (never a secret, never a stack trace)."""

    TYPE = "evt.build.failed"
    PRODUCERS = ("builder",)
    CONSUMERS = ("scheduler", "notifier")
    build_id: str
    deployment_id: str
    application_id: str = ""
    reason: str = Field(max_length=4000)
    stage: BuildFailureStage = "internal"
    commit: str = ""
    duration_s: float = 0.0


# --- routes ----------------------------------------------------------------------------------------


@register
class ApplyRoutes(Command):
    """Set the full upstream list of one route: every host goes to the load-balanced upstreams.

    Answered by ``evt.route.applied`` once Traefik's API shows the change live, or ``evt.route.failed``.
    ``generation`` orders commands for one route: one older than the route's current generation is refused
    as stale, so a late redelivery never overwrites a newer state. Route ids: lowercase letters, digits,
    ``-`` and ``_``; hosts: RFC 1123 names; upstreams: ``http(s)://host:port``.
    """

    TYPE = "cmd.route.apply"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    route_id: str = Id
    hosts: list[str] = Field(min_length=1, max_length=100)
    upstreams: list[str] = Field(min_length=1, max_length=256)
    generation: int = Field(default=0, ge=0)
    entry_point: str = Field(default="web", min_length=1, max_length=32)


@register
class RemoveRoute(Command):
    """Stop routing a route's hosts; answered by ``evt.route.removed`` once Traefik no longer has it."""

    TYPE = "cmd.route.remove"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    route_id: str = Id
    generation: int = Field(default=0, ge=0)


@register
class RoutesApplied(Event):
    """Traefik's API shows the route's hosts going to exactly ``upstreams`` (``live_ms`` after the write)."""

    TYPE = "evt.route.applied"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    hosts: list[str] = []
    upstreams: list[str] = []
    live: bool = True
    live_ms: float = 0.0


@register
class RouteRemoved(Event):
    """Traefik's API no longer has the route's router or service."""

    TYPE = "evt.route.removed"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    live_ms: float = 0.0


@register
class RouteFailed(Event):
    """The route is as it was before the command (invalid input, a stale generation, or not confirmed live)."""

    TYPE = "evt.route.failed"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    operation: Literal["apply", "remove"]
    reason: str = Field(max_length=4000)


# --- containers and alerts -------------------------------------------------------------------------
# Produced by the metrics service from the Docker events stream and from its threshold rules; consumed by
# the notifier. Container events carry the container's ``berth.*`` labels when it has them
# (``application_id`` = ``berth.app``, ``service`` = ``berth.service``, ``deployment_id`` =
# ``berth.deployment``, ``team_id`` = ``berth.team``; None for containers Berth did not start) and
# ``server``, the name of the server it runs on. Times are UTC. Queries of the metrics service are on
# ``rpc.metrics.<name>`` (name = TYPE without ``rpc.``); their replies carry ``problem`` (RFC 9457 shaped:
# status 404/422 with the field) instead of raising, so the api maps them to problem+json as they are.

from datetime import datetime as _datetime  # noqa: E402

from pydantic import model_validator as _model_validator  # noqa: E402

AlertTargetKind = Literal["container", "app", "server"]
AlertMetric = Literal["cpu_pct", "mem_pct", "disk_pct", "restarts"]
TARGET_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:-]{0,127})$"


class ContainerEvent(Event):
    """Fields every ``evt.container.*`` event has (not a message by itself)."""

    container_id: str  # the full Docker id
    container_name: str = ""
    image: str = ""
    application_id: str | None = None  # berth.app
    service: str | None = None  # berth.service
    deployment_id: str | None = None  # berth.deployment
    team_id: str | None = None  # berth.team
    server: str = ""
    reason: str = Field(default="", max_length=2000)  # what happened, in words
    occurred_at: _datetime | None = None  # when the Docker engine reported it


@register
class ContainerCrashed(ContainerEvent):
    """A container stopped on its own: it exited with a non-zero code nobody asked for, or the kernel's OOM
    killer ended it (``oom_killed``). A ``docker stop`` or a deploy replacing it is not a crash."""

    TYPE = "evt.container.crashed"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    exit_code: int | None = None
    oom_killed: bool = False


@register
class ContainerRestarted(ContainerEvent):
    """Docker's restart policy started a container again after it stopped on its own. ``looping`` when it
    restarted ``loop_threshold`` times or more within ``window_s`` (a restart loop): notify on those."""

    TYPE = "evt.container.restarted"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    restarts_in_window: int = Field(default=1, ge=0)
    window_s: float = 300.0
    loop_threshold: int = 3
    looping: bool = False


@register
class ContainerUnhealthy(ContainerEvent):
    """A container's health check failed: its Docker health status became ``unhealthy``."""

    TYPE = "evt.container.unhealthy"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    previous_health: str | None = None  # starting, healthy, or None when not seen before


@register
class ContainerHealthy(ContainerEvent):
    """A container that was unhealthy passes its health check again (a start that is healthy is not news)."""

    TYPE = "evt.container.healthy"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    previous_health: str | None = "unhealthy"


class AlertEvent(Event):
    """Fields every ``evt.alert.*`` event has (not a message by itself). One alert is one raise and one
    resolve with the same ``alert_id``; a rule has at most one open alert per target."""

    alert_id: str
    rule_id: str
    rule_name: str = ""
    team_id: str | None = None  # the team owning the rule
    target_kind: AlertTargetKind = "container"
    target_id: str = ""  # the concrete target: a container name, an application id, a server name
    target: str  # in words: "app web", "container web-1", "server vm1"
    metric: AlertMetric = "cpu_pct"  # cpu_pct (100 = one core), mem_pct, disk_pct, restarts (in window_s)
    threshold: float
    server: str = ""
    labels: dict[str, str] = {}  # app, service, container, mount, ... of the target
    since: _datetime | None = None  # when the value went above the threshold
    raised_at: _datetime | None = None
    reason: str = Field(default="", max_length=2000)  # what happened, in words


@register
class AlertRaised(AlertEvent):
    """A threshold rule fired: ``value`` stayed above ``threshold`` for ``for_s`` seconds (restarts: more than
    ``threshold`` restarts within ``window_s``). It resolves only below ``resolve_below``."""

    TYPE = "evt.alert.raised"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    value: float
    for_s: float = 0.0
    window_s: float | None = None
    resolve_below: float | None = None  # the value must fall to this or lower (threshold - margin)


@register
class AlertResolved(AlertEvent):
    """A raised alert is over: the value stayed at or below ``resolve_below`` for ``resolve_for_s`` seconds,
    or its target is gone (``value`` None)."""

    TYPE = "evt.alert.resolved"
    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    value: float | None = None
    peak: float | None = None  # the highest reading while it was raised
    resolve_below: float | None = None
    resolved_at: _datetime | None = None
    duration_s: float = 0.0  # raised_at to resolved_at


class MetricsProblem(BaseModel):
    """Why a metrics query was refused; ``status`` is the HTTP status the api should answer with."""

    status: int
    type: str  # a stable slug: not-found, invalid
    title: str
    field: str | None = None  # dotted path of the offending request field
    detail: str = ""


class SeriesData(BaseModel):
    """One metric of one container, server or mount: ``points`` are ``[time, value]`` (bucket starts)."""

    key: str  # container id, server name, or server:mount
    kind: Literal["container", "server", "mount"]
    name: str  # container name, server name, mount path
    server: str
    labels: dict[str, str] = {}  # app, service, deployment, team
    metric: str
    unit: str  # percent, bytes, count, load, state (health: 0 healthy, 1 starting, 2 unhealthy)
    points: list[tuple[_datetime, float | None]]


class MetricsReply(BaseModel):
    resolution: Literal["raw", "1m", "1h"] = "raw"
    step_s: float = 0.0
    start: _datetime | None = None
    end: _datetime | None = None
    series: list[SeriesData] = []
    problem: MetricsProblem | None = None


@register
class MetricsQuery(Query):
    """``rpc.metrics.query``: time series of a container, an application's containers or a server, from the
    finest stored resolution that covers ``start`` at ``step_s`` (raw samples, 1-minute or 1-hour rollups).
    With ``team_id`` only containers labelled with that team are visible."""

    TYPE = "rpc.query"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = MetricsReply
    target_kind: AlertTargetKind
    target_id: str = Field(pattern=TARGET_PATTERN.replace(r"\*|", ""))
    team_id: str | None = Field(default=None, min_length=1, max_length=64)
    start: _datetime
    end: _datetime | None = None  # default: now
    step_s: float = Field(default=60.0, ge=1.0, le=86400.0)
    metrics: list[str] = Field(default=[], max_length=20)  # default: every metric of the target


class AlertRuleSpec(BaseModel):
    """A threshold rule: ``metric`` of ``target_kind``/``target_id`` (``*``: all of the team's) above
    ``threshold`` for ``for_s`` raises; at or below ``threshold - margin`` for ``resolve_for_s`` resolves.
    ``restarts`` counts restarts within ``window_s``. ``margin`` defaults to 10% of the threshold (restarts:
    the threshold, so a restart alert resolves when the window is empty)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    target_kind: AlertTargetKind
    target_id: str = Field(pattern=TARGET_PATTERN)
    metric: AlertMetric
    threshold: float = Field(gt=0, le=1e6)
    margin: float | None = Field(default=None, gt=0)
    for_s: float = Field(default=60.0, ge=0, le=86400)
    resolve_for_s: float | None = Field(default=None, ge=0, le=86400)  # default: for_s
    window_s: float = Field(default=300.0, gt=0, le=86400)
    enabled: bool = True

    @_model_validator(mode="after")
    def _metric_fits_target(self) -> AlertRuleSpec:
        allowed = {"disk_pct": ("server",), "restarts": ("container", "app")}.get(self.metric)
        if allowed and self.target_kind not in allowed:
            raise ValueError(f"metric {self.metric} applies to {' or '.join(allowed)} targets")
        if self.margin is not None and self.margin > self.threshold:
            raise ValueError("margin must not exceed the threshold")
        return self


class AlertRuleView(AlertRuleSpec):
    id: str
    team_id: str
    created_at: _datetime
    updated_at: _datetime


class AlertRuleReply(BaseModel):
    rule: AlertRuleView | None = None
    problem: MetricsProblem | None = None


class AlertRuleListReply(BaseModel):
    rules: list[AlertRuleView] = []
    problem: MetricsProblem | None = None


class AlertRuleDeleteReply(BaseModel):
    deleted: bool = False
    problem: MetricsProblem | None = None


class AlertView(BaseModel):
    alert_id: str
    rule_id: str
    team_id: str
    target_kind: AlertTargetKind
    target_id: str
    metric: AlertMetric
    status: Literal["firing", "resolved"]
    value: float | None
    peak: float | None
    threshold: float
    labels: dict[str, str] = {}
    since: _datetime | None
    raised_at: _datetime
    resolved_at: _datetime | None = None


class AlertListReply(BaseModel):
    alerts: list[AlertView] = []
    problem: MetricsProblem | None = None


@register
class AlertRuleCreate(Query):
    """``rpc.metrics.alert_rule.create``: a team's threshold rule."""

    TYPE = "rpc.alert_rule.create"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = AlertRuleReply
    team_id: str = Id
    rule: AlertRuleSpec


@register
class AlertRuleUpdate(Query):
    """``rpc.metrics.alert_rule.update``: replace a rule of the team (its open alerts are re-evaluated)."""

    TYPE = "rpc.alert_rule.update"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = AlertRuleReply
    team_id: str = Id
    rule_id: str = Id
    rule: AlertRuleSpec


@register
class AlertRuleList(Query):
    """``rpc.metrics.alert_rule.list``: the team's rules."""

    TYPE = "rpc.alert_rule.list"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = AlertRuleListReply
    team_id: str = Id


@register
class AlertRuleDelete(Query):
    """``rpc.metrics.alert_rule.delete``: remove a rule of the team; its open alerts end without an event."""

    TYPE = "rpc.alert_rule.delete"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = AlertRuleDeleteReply
    team_id: str = Id
    rule_id: str = Id


@register
class AlertList(Query):
    """``rpc.metrics.alert.list``: the team's alerts, open ones first, newest first."""

    TYPE = "rpc.alert.list"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY: ClassVar[type[BaseModel]] = AlertListReply
    team_id: str = Id
    open_only: bool = False
    limit: int = Field(default=100, ge=1, le=500)


# --- notifications ---------------------------------------------------------------------------------
# Queries of the notifier on ``rpc.notifier.<name>`` (name = TYPE without ``rpc.``). Every query carries
# ``team_id`` and the notifier filters by it: another team's channel answers 404 exactly like a missing
# one. Secret fields (webhook URLs, bot tokens, SMTP passwords, signing secrets) are write-only: stored
# encrypted, never in a reply (only ``secrets_set`` and a ``target`` hint), an event or a log line. An
# update that omits a secret field keeps the stored value. Replies carry ``problem`` (RFC 9457 shaped:
# status 404/409/422 with the field) instead of raising, so the api maps them to problem+json as they are.

from datetime import datetime  # noqa: E402
from typing import Any  # noqa: E402

NOTIFY_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
WRITE_ONLY: dict[str, Any] = {"writeOnly": True, "format": "password"}
DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]


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
    from_addr: str = Field(min_length=3, max_length=254)
    to_addrs: list[str] = Field(min_length=1, max_length=50)


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


class NotifyProblem(BaseModel):
    """Why a notifier query was refused; ``status`` is the HTTP status the api should answer with."""

    status: int
    type: str  # a stable slug: not-found, conflict, invalid
    title: str
    field: str | None = None  # dotted path of the offending request field
    detail: str = ""


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


@register
class ChannelCreate(Query):
    """``rpc.notifier.channel.create``: a team's notification channel (secrets encrypted at rest)."""

    TYPE = "rpc.channel.create"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = ChannelReply
    team_id: str = Id
    name: str = Field(pattern=NOTIFY_NAME_PATTERN)
    target: ChannelTarget
    enabled: bool = True


@register
class ChannelList(Query):
    """``rpc.notifier.channel.list``: a team's channels, secrets masked."""

    TYPE = "rpc.channel.list"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = ChannelListReply
    team_id: str = Id


@register
class ChannelGet(Query):
    """``rpc.notifier.channel.get``: one channel of the team, secrets masked."""

    TYPE = "rpc.channel.get"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = ChannelReply
    team_id: str = Id
    channel_id: str = Id


@register
class ChannelUpdate(Query):
    """``rpc.notifier.channel.update``: rename, enable/disable or reconfigure (same kind) a channel."""

    TYPE = "rpc.channel.update"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = ChannelReply
    team_id: str = Id
    channel_id: str = Id
    name: str | None = Field(default=None, pattern=NOTIFY_NAME_PATTERN)
    enabled: bool | None = None
    target: ChannelTarget | None = None


@register
class ChannelDelete(Query):
    """``rpc.notifier.channel.delete``: remove a channel, its subscriptions and its delivery log."""

    TYPE = "rpc.channel.delete"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = DeletedReply
    team_id: str = Id
    channel_id: str = Id


@register
class ChannelTest(Query):
    """``rpc.notifier.channel.test``: send a test message now; waits up to ``wait_s`` for the outcome."""

    TYPE = "rpc.channel.test"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = DeliveryReply
    team_id: str = Id
    channel_id: str = Id
    wait_s: float = Field(default=3.0, ge=0, le=10)


@register
class SubscriptionCreate(Query):
    """``rpc.notifier.subscription.create``: event types (``evt.x.y``, ``evt.x.*``, ``evt.x.>``) for a channel."""

    TYPE = "rpc.subscription.create"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = SubscriptionReply
    team_id: str = Id
    channel_id: str = Id
    event_types: list[str] = Field(min_length=1, max_length=32)
    project_id: str | None = Field(default=None, min_length=1, max_length=64)
    application_id: str | None = Field(default=None, min_length=1, max_length=64)


@register
class SubscriptionList(Query):
    """``rpc.notifier.subscription.list``: a team's subscriptions, optionally of one channel."""

    TYPE = "rpc.subscription.list"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = SubscriptionListReply
    team_id: str = Id
    channel_id: str | None = Field(default=None, min_length=1, max_length=64)


@register
class SubscriptionDelete(Query):
    """``rpc.notifier.subscription.delete``: stop sending these events to the channel."""

    TYPE = "rpc.subscription.delete"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = DeletedReply
    team_id: str = Id
    subscription_id: str = Id


@register
class DeliveryList(Query):
    """``rpc.notifier.delivery.list``: the delivery log, newest first (status, attempts, last error)."""

    TYPE = "rpc.delivery.list"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)
    REPLY: ClassVar[type[BaseModel]] = DeliveryListReply
    team_id: str = Id
    channel_id: str | None = Field(default=None, min_length=1, max_length=64)
    status: DeliveryStatus | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: datetime | None = None  # page: deliveries created strictly before this time


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
