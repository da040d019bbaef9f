"""Deployments: the api's desired-state snapshot, the scheduler's rollout commands and events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, Query, register
from berth_common.catalogue.specs import *  # noqa: F403  (the spec's models, re-exported with the messages)
from berth_common.catalogue.specs import ApplicationSpec, DeploymentState, Spec
from berth_common.values import Slug


class RolloutOptions(Spec):
    """Per-deployment overrides of the scheduler's defaults (``None``: the scheduler setting)."""

    drain_grace_s: float | None = Field(default=None, ge=0, le=3600)
    readiness_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    build_timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)
    # A deployment arriving while another of the same application runs: wait behind it, or cancel the
    # deployments still queued (not yet started) for that application and take their place.
    when_busy: Literal["queue", "replace_queued"] = "queue"
    # Named volumes leaving a server (a drain, a placement change) start empty on the servers taking its place
    # instead of having their data copied (the only way off a server that does not answer); left out of a dump
    # when false, so a deployment that does not ask for it carries what it carried before.
    abandon_volume_data: bool = Field(
        default=False,
        description="Named volumes leaving a server start empty where they go: their data is not copied",
        exclude_if=lambda v: v is False,
    )


class DeploymentCommand(Command):
    """Fields every ``cmd.deployment.*`` command has (not a message by itself): the deployment it is about."""

    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    deployment_id: Id


@register
class StartDeployment(DeploymentCommand):
    """Deploy a new version of an application from ``spec``, the api's snapshot of its desired state.

    The scheduler builds it (git source), starts the new containers, waits until they are ready, moves the
    routes and stops the previous version; it answers with ``evt.deployment.succeeded``,
    ``evt.deployment.failed`` or ``evt.deployment.cancelled``.
    """

    TYPE = "cmd.deployment.start"
    application_id: Id
    team_id: Id
    spec: ApplicationSpec
    options: RolloutOptions = RolloutOptions()
    # A rollback of a compose application whose services have images of their own: each service with a
    # ``build`` runs the image it ran in this deployment (no build), and each with an ``image`` runs that
    # deployment's image (by digest) when it named another one; left out of a dump when None.
    images_of: Id | None = Field(default=None, exclude_if=lambda v: v is None)
    # The deployment's number among its application's (the api's request order). Start commands may reach the
    # scheduler out of that order (one redelivered after a crash of its consumer): one arriving after a newer
    # deployment of its application is cancelled instead of replacing the newer version. Left out of a dump
    # when None (a command from before it was sent).
    number: int | None = Field(default=None, ge=1, exclude_if=lambda v: v is None)


@register
class CancelDeployment(DeploymentCommand):
    """Cancel a queued deployment, or one not yet serving traffic (building, starting, verifying, routing)."""

    TYPE = "cmd.deployment.cancel"
    reason: str = Field(default="cancelled by user", max_length=500)


class DeploymentEvent(Event):
    """Fields of the events that record a deployment and end it (not a message by itself): the deployment,
    its application and its team."""

    deployment_id: str
    application_id: str
    team_id: str


class DeploymentOutcome(DeploymentEvent):
    """Fields of the events that end a deployment (not a message by itself): one of them answers every
    ``cmd.deployment.start``, for the api and the notifier."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api", "notifier")


@register
class DeploymentQueued(DeploymentEvent):
    """The api recorded a deployment and asked the scheduler to run it."""

    TYPE = "evt.deployment.queued"
    PRODUCERS = ("api",)
    CONSUMERS = ("notifier",)


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
    # ``repo@sha256:...`` of the image pulled or found (on the step that pulled it), or of a build pushed to
    # the team's push registry (on ``build succeeded``): what a rollback runs
    image_digest: str | None = None


@register
class ImagesPruned(Event):
    """Image retention removed these tags of images Berth built for the application (the scheduler keeps
    those of its last deployments): a rollback to a deployment that ran one of them, with no image digest
    to pull again, has nothing to run, and the api refuses it."""

    TYPE = "evt.application.images_pruned"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    application_id: Id
    images: list[str] = Field(min_length=1, max_length=1000)


class Replica(Spec):
    """One running container of a deployment (no environment, no secrets)."""

    service: Slug
    kind: Literal["web", "worker"]
    replica: int
    container: str  # the container name
    upstream: str | None = None  # web: http://127.0.0.1:<host port>


@register
class DeploymentSucceeded(DeploymentOutcome):
    """The new version serves all traffic; the previous version's containers are stopped and removed."""

    TYPE = "evt.deployment.succeeded"
    image: str
    # ``repo@sha256:...`` of a pulled image or of a build's ``pushed_ref``; None for a build kept on its servers
    image_digest: str | None = None
    previous_deployment_id: str | None = None
    duration_s: float = 0.0  # from the start command's arrival to success (a rollback's time, too)
    replicas: list[Replica] = Field(default_factory=list)


@register
class DeploymentFailed(DeploymentOutcome):
    """The new containers are removed, the routes are as before, the previous version keeps serving."""

    TYPE = "evt.deployment.failed"
    reason: str = Field(max_length=4000)
    failed_in: DeploymentState | None = None  # the state the deployment was in when it failed
    duration_s: float = 0.0


@register
class DeploymentCancelled(DeploymentOutcome):
    """Cancelled before serving traffic: its containers are removed, the previous version keeps serving."""

    TYPE = "evt.deployment.cancelled"
    reason: str = Field(default="", max_length=500)
    cancelled_in: DeploymentState | None = None


@register
class ReplicasQuery(Query):
    """``rpc.scheduler.replicas``: an application's containers as Docker sees them now (on a Swarm: its
    services' current tasks, each with the node it runs on)."""

    TYPE = "rpc.replicas"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    application_id: Id


class ReplicaStatus(Spec):
    deployment_id: str
    service: str
    replica: int
    container: str
    state: str  # docker's: running, restarting, exited, ...
    health: Literal["ready", "unready", "unknown"] = "unknown"
    restarts: int = 0
    upstream: str | None = None
    node: str | None = None  # a Swarm task's node: its server id when Berth manages it (else the node id)
    server: str | None = None  # the server id of a container's engine (``local``: the control plane's own)


class ReplicasReply(Spec):
    application_id: str
    live_deployment_id: str | None = None
    replicas: list[ReplicaStatus] = Field(default_factory=list)
