"""Builds: the scheduler asks the builder for an image; the builder answers with one event."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.catalogue.deployments import GitSource
from berth_common.values import ImageTag

# --- builds ----------------------------------------------------------------------------------------
# The scheduler asks the builder for an image from a ``GitSource`` snapshot. The builder validates every
# URL, ref and path before any git process runs, streams its output as ``LogLine`` on
# ``log.<deployment_id>`` and answers with exactly one of the two events (a redelivered command for a
# finished build re-emits the same result). Secret build args never reach a log line, an event or a layer.

BUILD_FAILURE_STAGES = ("source", "clone", "dockerfile", "build", "push", "internal")
BuildFailureStage = Literal["source", "clone", "dockerfile", "build", "push", "internal"]
# ``<registry host>/<repository>@sha256:<64 hex>``: an image a registry serves, named by its digest.
PushedRef = Annotated[str, Field(max_length=512, pattern=r"^[a-z0-9][a-z0-9._:/-]{0,400}@sha256:[0-9a-f]{64}$")]
BuildId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class BuildCommand(Command):
    """Fields every ``cmd.build.*`` command has (not a message by itself): the build and its deployment."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("builder",)
    build_id: BuildId
    deployment_id: Id


class BuildEvent(Event):
    """Fields every ``evt.build.*`` event has (not a message by itself): the build and its deployment."""

    PRODUCERS = ("builder",)
    build_id: str
    deployment_id: str
    application_id: str = ""


@register
class StartBuild(BuildCommand):
    """Clone ``source`` (shallow, with a timeout) and build it into ``image_tag`` through the Docker API.

    The build runs on the engine of ``source.build_server`` (``local``: the control plane's; another server's
    engine through its SSH-forwarded socket, the builder's server directory saying how to reach it). With
    ``source.push`` (the team's push registry, its credentials sealed) the image is then pushed to
    ``<registry>/<namespace>/<application>:<deployment tag>``; ``source.base_auths`` are the team's
    credentials for the registries the image map sends ``FROM`` bases to."""

    TYPE = "cmd.build.start"
    CONSUMER_CHECKS_VALUES = True  # a bad source or tag is answered with evt.build.failed (stage "source")
    application_id: Id
    source: GitSource
    image_tag: ImageTag  # e.g. berth/<app>:<deployment>
    no_cache: bool = False
    timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)  # None: the builder's setting


@register
class BuildSucceeded(BuildEvent):
    """``image`` exists on the build host; ``reused``: tagged from an earlier build of the same inputs.

    ``pushed_ref`` (``<registry>/<namespace>/<application>@sha256:...``) is set when the build pushed the
    image to the team's push registry (``StartBuild.source.push``): the scheduler then pulls exactly that on
    every target server, with the push registry's credentials. None: the image is only on the build server
    (the scheduler streams it to the target servers over SSH, ``docker save | docker load``)."""

    TYPE = "evt.build.succeeded"
    CONSUMERS = ("scheduler", "api")
    image: ImageTag  # the tag asked for (``image_tag``), now pointing at ``image_id``
    image_id: str = ""
    commit: str = ""  # the resolved commit sha
    reused: bool = False  # an image built earlier from the same commit and inputs was tagged again
    generated_dockerfile: str | None = Field(default=None, max_length=65536)  # Berth's detection, if used
    duration_s: float = 0.0
    pushed_ref: PushedRef | None = Field(default=None, exclude_if=lambda v: v is None)


@register
class BuildFailed(BuildEvent):
    """``reason`` is for a person: what failed and what to do (never a secret, never a stack trace)."""

    TYPE = "evt.build.failed"
    CONSUMERS = ("scheduler", "notifier")
    reason: str = Field(max_length=4000)
    stage: BuildFailureStage = "internal"
    commit: str = ""
    duration_s: float = 0.0


@register
class CancelBuild(BuildCommand):
    """Stop build ``build_id`` (its deployment was cancelled or failed while building): git and the Docker
    build are killed, what the build made is removed, and the builder answers with ``evt.build.cancelled``.
    A build that has not started never starts; one that already finished is left as it is, except that an
    image it tagged for the cancelled deployment is untagged."""

    TYPE = "cmd.build.cancel"
    reason: str = Field(default="cancelled", max_length=500)


@register
class BuildCancelled(BuildEvent):
    """The build was stopped before its end by ``cmd.build.cancel``; no image of it is left."""

    TYPE = "evt.build.cancelled"
    CONSUMERS = ("scheduler",)
    reason: str = Field(default="", max_length=500)
    duration_s: float = 0.0
