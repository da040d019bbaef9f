"""Builds: the scheduler asks the builder for an image; the builder answers with one event."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from berth_common.catalogue.base import Command, Event, Id, Problem, Query, register
from berth_common.catalogue.deployments import GitSource
from berth_common.catalogue.git_auth import GitAuth, HostKey
from berth_common.values import GitRef, GitUrl, ImageTag, Slug

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
    """Fields every ``evt.build.*`` event has (not a message by itself): the build and its deployment. Each
    event ends with ``service``: the compose service it was built for (``StartBuild.service``, left out of a
    dump when None)."""

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
    credentials for the registries the image map sends ``FROM`` bases to.

    A compose application builds one image per service with a ``build:`` section: one command per service,
    each with its own ``build_id`` and ``image_tag``, ``service`` naming it, and ``source`` the application's
    source with that service's context (``subdirectory``), ``dockerfile`` and ``build_args``. ``service`` is
    echoed in the answer, put on the image as the ``berth.service`` label and before each log line."""

    TYPE = "cmd.build.start"
    CONSUMER_CHECKS_VALUES = True  # a bad source or tag is answered with evt.build.failed (stage "source")
    application_id: Id
    source: GitSource
    image_tag: ImageTag  # e.g. berth/<app>:<deployment>
    no_cache: bool = False
    timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)  # None: the builder's setting
    service: Slug | None = Field(default=None, exclude_if=lambda v: v is None)  # None: the application's image
    # The application's team: its outbound allowance applies to the git server (berth_common.outbound).
    team_id: str = Field(default="", max_length=64, exclude_if=lambda v: not v)


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
    service: str | None = Field(default=None, max_length=64, exclude_if=lambda v: v is None)


@register
class BuildFailed(BuildEvent):
    """``reason`` is for a person: what failed and what to do (never a secret, never a stack trace)."""

    TYPE = "evt.build.failed"
    CONSUMERS = ("scheduler", "notifier")
    reason: str = Field(max_length=4000)
    stage: BuildFailureStage = "internal"
    commit: str = ""
    duration_s: float = 0.0
    service: str | None = Field(default=None, max_length=64, exclude_if=lambda v: v is None)


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
    service: str | None = Field(default=None, max_length=64, exclude_if=lambda v: v is None)


# --- files of a repository -------------------------------------------------------------------------
# The api does not clone: it asks the builder for one file of an application's repository at a ref (a
# compose file at ``compose.path``). The builder clones as for a build (the same URL and ref rules, the
# same credentials, shallow, with a deadline) and answers with the file's text and the commit it read.

MAX_FILE_BYTES = 4 * 1024 * 1024


class RepositoryFileReply(BaseModel):
    """The file's ``text`` (UTF-8) and ``size`` in bytes, read at ``commit``; or ``problem``: why not
    (``field`` names the query's ``repository``, ``ref`` or ``path``; ``status`` 422 for what the user can
    fix: no such ref or file, too large, a symlink, no access; 502 when the git server did not answer).
    Never a credential, never a path of the builder's disk."""

    text: str = ""
    size: int = 0
    commit: str = ""
    problem: Problem | None = None


@register
class RepositoryFileQuery(Query):
    """``rpc.builder.repository_file``: the text of the regular file ``path`` (relative to the repository's
    root; no ``..``, no symlink on the way) of ``repository`` at ``ref``, at most ``max_bytes`` (None and
    above the builder's setting: the setting), read within ``timeout_s`` (None: the builder's setting)."""

    TYPE = "rpc.repository_file"
    PRODUCERS = ("api",)
    CONSUMERS = ("builder",)
    REPLY = RepositoryFileReply
    repository: GitUrl
    ref: GitRef
    path: str = Field(min_length=1, max_length=1024)
    max_bytes: int | None = Field(default=None, ge=1, le=MAX_FILE_BYTES)
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    auth: GitAuth | None = Field(default=None, exclude_if=lambda v: v is None)  # a private repository's
    team_id: str = Field(default="", max_length=64, exclude_if=lambda v: not v)  # whose outbound allowance applies


# --- the commit a ref names now ---------------------------------------------------------------------
# A deployment of a git application builds the commit its branch or tag names when the deployment is
# requested: the api asks the builder (``git ls-remote``, the same URL rules, credentials and deadline as a
# build's clone) and records that commit on the deployment.


class ResolveRefReply(BaseModel):
    """The full ``commit`` the ref names; ``""`` when it cannot be told without a clone (an abbreviated
    commit id); or ``problem``: why not (``field`` names the query's ``repository``, ``ref`` or ``auth``;
    ``status`` 422 for what the user can fix, 502 when the git server did not answer). Never a credential."""

    commit: str = ""
    problem: Problem | None = None


@register
class ResolveRefQuery(Query):
    """``rpc.builder.resolve_ref``: the commit ``ref`` (a branch, tag or commit id) of ``repository`` names
    now, read within ``timeout_s`` (None: the builder's setting)."""

    TYPE = "rpc.resolve_ref"
    PRODUCERS = ("api",)
    CONSUMERS = ("builder",)
    REPLY = ResolveRefReply
    repository: GitUrl
    ref: GitRef
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    auth: GitAuth | None = Field(default=None, exclude_if=lambda v: v is None)  # a private repository's
    team_id: str = Field(default="", max_length=64, exclude_if=lambda v: not v)  # whose outbound allowance applies


# --- host keys of a git server ---------------------------------------------------------------------
# A deploy key's clone trusts only pinned host keys. At first contact the api asks the builder (the
# service that reaches the forge) which keys the server presents, pins them and shows them.


class HostKeysReply(BaseModel):
    """The keys the server presented (known_hosts form), or ``problem``: why none (502: no answer)."""

    host_keys: list[HostKey] = Field(default_factory=list, max_length=20)
    problem: Problem | None = None


@register
class HostKeysQuery(Query):
    """``rpc.builder.host_keys``: the public host keys the SSH server of ``repository`` (an ``ssh://`` or
    scp-like URL) presents, read with ``ssh-keyscan`` within ``timeout_s``."""

    TYPE = "rpc.host_keys"
    PRODUCERS = ("api",)
    CONSUMERS = ("builder",)
    REPLY = HostKeysReply
    repository: GitUrl
    timeout_s: float = Field(default=10, gt=0, le=60)
    team_id: str = Field(default="", max_length=64, exclude_if=lambda v: not v)  # whose outbound allowance applies
