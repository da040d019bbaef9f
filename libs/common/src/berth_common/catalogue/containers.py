"""Containers and alerts: lifecycle events from the Docker engine, thresholds, metric queries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from berth_common.catalogue.base import Event, Id, Problem, Query, TeamQuery, register

# --- containers and alerts -------------------------------------------------------------------------
# Produced by the metrics service from the Docker events stream and from its threshold rules; consumed by
# the notifier. Container events carry the container's ``berth.*`` labels when it has them
# (``application_id`` = ``berth.app``, ``service`` = ``berth.service``, ``deployment_id`` =
# ``berth.deployment``, ``team_id`` = ``berth.team``; None for containers Berth did not start) and
# ``server``, the name of the server it runs on. Times are UTC. Queries of the metrics service are on
# ``rpc.metrics.<name>`` (name = TYPE without ``rpc.``); their replies carry ``problem`` (RFC 9457 shaped:
# status 404/422 with the field) instead of raising, so the api maps them to problem+json as they are.


AlertTargetKind = Literal["container", "app", "server"]
# ``down``: the built-in "database down" alert (rule id ``BUILTIN_DATABASE_DOWN``), raised for every database
# whose container is not running and healthy for the metrics service's time; never a user's rule.
AlertMetric = Literal["cpu_pct", "mem_pct", "disk_pct", "restarts", "down"]
BUILTIN_DATABASE_DOWN = "builtin-database-down"
# The metrics a ``MetricsQuery`` may name (the metrics service's stored columns and derived percentages; the
# api documents them as the ``metric`` query's enum).
QueryMetric = Literal[
    "blk_read",
    "blk_write",
    "cpu_pct",
    "disk_pct",
    "disk_total",
    "disk_used",
    "health",
    "load1",
    "load15",
    "load5",
    "mem_limit",
    "mem_pct",
    "mem_used",
    "net_rx",
    "net_tx",
    "restarts",
]
TARGET_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:-]{0,127})$"


class ContainerEvent(Event):
    """Fields every ``evt.container.*`` event has (not a message by itself)."""

    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    container_id: str  # the full Docker id
    container_name: str = ""
    image: str = ""
    application_id: str | None = None  # berth.app
    service: str | None = None  # berth.service
    deployment_id: str | None = None  # berth.deployment
    team_id: str | None = None  # berth.team
    server: str = ""
    reason: str = Field(default="", max_length=2000)  # what happened, in words
    occurred_at: datetime | None = None  # when the Docker engine reported it


@register
class ContainerCrashed(ContainerEvent):
    """A container stopped on its own: it exited with a non-zero code nobody asked for, or the kernel's OOM
    killer ended it (``oom_killed``). A ``docker stop`` or a deploy replacing it is not a crash."""

    TYPE = "evt.container.crashed"
    exit_code: int | None = None
    oom_killed: bool = False


@register
class ContainerRestarted(ContainerEvent):
    """Docker's restart policy started a container again after it stopped on its own. ``looping`` when it
    restarted ``loop_threshold`` times or more within ``window_s`` (a restart loop): notify on those."""

    TYPE = "evt.container.restarted"
    restarts_in_window: int = Field(default=1, ge=0)
    window_s: float = 300.0
    loop_threshold: int = 3
    looping: bool = False


@register
class ContainerUnhealthy(ContainerEvent):
    """A container's health check failed: its Docker health status became ``unhealthy``."""

    TYPE = "evt.container.unhealthy"
    previous_health: str | None = None  # starting, healthy, or None when not seen before


@register
class ContainerHealthy(ContainerEvent):
    """A container that was unhealthy passes its health check again (a start that is healthy is not news)."""

    TYPE = "evt.container.healthy"
    previous_health: str | None = "unhealthy"


class AlertEvent(Event):
    """Fields every ``evt.alert.*`` event has (not a message by itself). One alert is one raise and one
    resolve with the same ``alert_id``; a rule has at most one open alert per target."""

    PRODUCERS = ("metrics",)
    CONSUMERS = ("notifier",)
    alert_id: str
    rule_id: str
    rule_name: str = ""
    team_id: str | None = None  # the team owning the rule
    target_kind: AlertTargetKind = "container"
    target_id: str = ""  # the concrete target: a container name, an application id, a server name
    target: str  # in words: "app web", "container web-1", "server vm1"
    metric: AlertMetric = "cpu_pct"  # cpu_pct (100 = one core), mem_pct, disk_pct, restarts (in window_s),
    # down (seconds the database's container has not been running and healthy)
    threshold: float
    server: str = ""
    labels: dict[str, str] = {}  # app, service, container, mount, ... of the target
    since: datetime | None = None  # when the value went above the threshold
    raised_at: datetime | None = None
    reason: str = Field(default="", max_length=2000)  # what happened, in words


@register
class AlertRaised(AlertEvent):
    """A threshold rule fired: ``value`` stayed above ``threshold`` for ``for_s`` seconds (restarts: more than
    ``threshold`` restarts within ``window_s``). It resolves only below ``resolve_below``."""

    TYPE = "evt.alert.raised"
    value: float
    for_s: float = 0.0
    window_s: float | None = None
    resolve_below: float | None = None  # the value must fall to this or lower (threshold - margin)


@register
class AlertResolved(AlertEvent):
    """A raised alert is over: the value stayed at or below ``resolve_below`` for ``resolve_for_s`` seconds,
    or its target is gone (``value`` None)."""

    TYPE = "evt.alert.resolved"
    value: float | None = None
    peak: float | None = None  # the highest reading while it was raised
    resolve_below: float | None = None
    resolved_at: datetime | None = None
    duration_s: float = 0.0  # raised_at to resolved_at


class MetricsProblem(Problem):
    """Why a metrics query was refused; ``status`` is the HTTP status the api should answer with."""


class SeriesData(BaseModel):
    """One metric of one container, server or mount: ``points`` are ``[time, value]`` (bucket starts)."""

    key: str  # container id, server name, or server:mount
    kind: Literal["container", "server", "mount"]
    name: str  # container name, server name, mount path
    server: str
    server_id: str = "local"  # the server the reading was taken on (``local``: the control plane's engine)
    labels: dict[str, str] = {}  # app, service, deployment, team
    metric: str
    unit: str  # percent, bytes, count, load, state (health: 0 healthy, 1 starting, 2 unhealthy)
    points: list[tuple[datetime, float | None]]


class ServerStatus(BaseModel):
    """Whether a server's Docker engine answers the metrics service's collections: ``down`` once it missed
    the configured number in a row (``evt.server.unreachable``), ``up`` again when it answers."""

    status: Literal["up", "down"]
    failures: int = 0  # collections in a row it did not answer
    failing_since: datetime | None = None  # the first of them
    last_seen_at: datetime | None = None  # the last collection it answered (since the service started)
    error: str = ""  # the last error talking to it


class MetricsReply(BaseModel):
    resolution: Literal["raw", "1m", "1h"] = "raw"
    step_s: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    series: list[SeriesData] = []
    server_status: ServerStatus | None = None  # a server's query: whether its engine answers
    problem: MetricsProblem | None = None


@register
class MetricsQuery(Query):
    """``rpc.metrics.query``: time series of a container, an application's containers or a server, from the
    finest stored resolution that covers ``start`` at ``step_s`` (raw samples, 1-minute or 1-hour rollups).
    With ``team_id`` only containers labelled with that team are visible, and a server added to Berth only to
    the team that owns it or has containers on it (another team is answered 404, as for a missing server).
    A server is named by its id (``local``: the control plane, named by its host name) or its name."""

    TYPE = "rpc.query"
    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)
    REPLY = MetricsReply
    target_kind: AlertTargetKind
    target_id: str = Field(pattern=TARGET_PATTERN.replace(r"\*|", ""))
    team_id: Id | None = None
    server_id: str | None = Field(default=None, max_length=64)  # only what was read on this server
    start: datetime
    end: datetime | None = None  # default: now
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

    @model_validator(mode="after")
    def _metric_fits_target(self) -> AlertRuleSpec:
        if self.metric == "down":
            raise ValueError("metric down is built in: every database raises it when its container stays down")
        allowed = {"disk_pct": ("server",), "restarts": ("container", "app")}.get(self.metric)
        if allowed and self.target_kind not in allowed:
            raise ValueError(f"metric {self.metric} applies to {' or '.join(allowed)} targets")
        if self.margin is not None and self.margin > self.threshold:
            raise ValueError("margin must not exceed the threshold")
        return self


class AlertRuleView(AlertRuleSpec):
    id: str
    team_id: str
    created_at: datetime
    updated_at: datetime


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
    since: datetime | None
    raised_at: datetime
    resolved_at: datetime | None = None


class AlertListReply(BaseModel):
    alerts: list[AlertView] = []
    problem: MetricsProblem | None = None


class AlertQuery(TeamQuery):
    """A query of the metrics service about a team's alert rules or alerts (not a message by itself)."""

    PRODUCERS = ("api",)
    CONSUMERS = ("metrics",)


@register
class AlertRuleCreate(AlertQuery):
    """``rpc.metrics.alert_rule.create``: a team's threshold rule."""

    TYPE = "rpc.alert_rule.create"
    REPLY = AlertRuleReply
    rule: AlertRuleSpec


@register
class AlertRuleUpdate(AlertQuery):
    """``rpc.metrics.alert_rule.update``: replace a rule of the team (its open alerts are re-evaluated)."""

    TYPE = "rpc.alert_rule.update"
    REPLY = AlertRuleReply
    rule_id: Id
    rule: AlertRuleSpec


@register
class AlertRuleList(AlertQuery):
    """``rpc.metrics.alert_rule.list``: the team's rules."""

    TYPE = "rpc.alert_rule.list"
    REPLY = AlertRuleListReply


@register
class AlertRuleDelete(AlertQuery):
    """``rpc.metrics.alert_rule.delete``: remove a rule of the team; its open alerts end without an event."""

    TYPE = "rpc.alert_rule.delete"
    REPLY = AlertRuleDeleteReply
    rule_id: Id


@register
class AlertList(AlertQuery):
    """``rpc.metrics.alert.list``: the team's alerts, open ones first, newest first."""

    TYPE = "rpc.alert.list"
    REPLY = AlertListReply
    open_only: bool = False
    limit: int = Field(default=100, ge=1, le=500)
