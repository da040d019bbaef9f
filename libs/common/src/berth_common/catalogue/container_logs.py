"""Log lines of containers, asked of the scheduler (which reaches every server's engine).

- ``rpc.scheduler.container_logs``: one container's recent lines (a database's); the api names the server and
  the container after checking the caller's team owns it.
- ``rpc.scheduler.runtime_logs``: an application's lines, every replica of every server merged by time.
- ``rpc.scheduler.follow_logs``: the scheduler follows an application's (or one container's) output and
  publishes it, in :class:`FollowedLines` batches, to a core NATS inbox the api named; it asks
  ``<inbox>.alive`` now and then and stops when nobody answers there.

The scheduler answers only for containers labelled with the asking team (``berth.team``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from berth_common.catalogue.base import Id, Query, register

CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
SERVICE_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"  # a service name, or "" for every service
INBOX_PATTERN = r"^_INBOX\.[A-Za-z0-9_-]{1,100}(\.[A-Za-z0-9_-]{1,100}){0,3}$"
MAX_TAIL = 5000
MAX_REPLY_BYTES = 768 * 1024  # a reply of lines stays under the bus's 1 MiB message size
ALIVE_SUFFIX = ".alive"  # the follower asks ``<inbox>.alive``; no answer there: the api's client went away


class ContainerLogLine(BaseModel):
    """One line a container wrote: on ``stdout`` or ``stderr``, at ``time`` (the engine's timestamp)."""

    stream: Literal["stdout", "stderr"]
    time: datetime | None = None
    line: str


class ContainerLogsReply(BaseModel):
    """The lines, oldest first; ``found`` False: no such container of the team on that server;
    ``unreachable``: the server's engine did not answer (``reason`` says how)."""

    found: bool = True
    unreachable: bool = False
    reason: str = ""
    lines: list[ContainerLogLine] = []


@register
class ContainerLogsQuery(Query):
    """``rpc.scheduler.container_logs``: the last ``tail`` lines of ``container`` on ``server_id`` (stdout and
    stderr apart, with the engine's timestamps), if it carries the label ``berth.team`` = ``team_id``."""

    TYPE = "rpc.container_logs"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    REPLY = ContainerLogsReply
    team_id: Id
    server_id: Id = "local"
    container: str = Field(pattern=CONTAINER_NAME_PATTERN)
    tail: int = Field(default=200, ge=1, le=MAX_TAIL)
    since: datetime | None = None  # only lines written at or after it
    until: datetime | None = None  # only lines written at or before it


class RuntimeLogLine(BaseModel):
    """One line of a running application (or database): which service and replica (its container's name)
    wrote it, on which server, on which stream, when."""

    service: str = ""
    replica: str
    server_id: str
    stream: Literal["stdout", "stderr"]
    time: datetime | None = None
    line: str


class RuntimeLogsReply(BaseModel):
    """The lines, oldest first (replicas merged by time); ``unreachable``: server id -> why its lines are
    missing; ``truncated``: the oldest lines were left out to keep the reply under the bus's message size."""

    lines: list[RuntimeLogLine] = []
    unreachable: dict[str, str] = {}
    truncated: bool = False


@register
class RuntimeLogsQuery(Query):
    """``rpc.scheduler.runtime_logs``: the last ``tail`` lines of the application's containers of ``team_id``
    on every server it runs on (of one ``service``, or all), between ``since`` and ``until``."""

    TYPE = "rpc.runtime_logs"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    REPLY = RuntimeLogsReply
    team_id: Id
    application_id: Id
    service: str = Field(default="", pattern=SERVICE_PATTERN)
    tail: int = Field(default=200, ge=1, le=MAX_TAIL)
    since: datetime | None = None
    until: datetime | None = None


class FollowLogsReply(BaseModel):
    """``found`` False: nothing of the team to follow; ``containers``: how many are followed now (more join
    as the application gets new replicas); ``unreachable``: server id -> why it is not followed; ``busy``:
    the scheduler runs as many follows as it may, this one is not started."""

    found: bool = True
    containers: int = 0
    unreachable: dict[str, str] = {}
    busy: bool = False


@register
class FollowLogsQuery(Query):
    """``rpc.scheduler.follow_logs``: follow, from ``since``, the application's containers (of ``service``,
    or all) or the one ``container`` on ``server_id``, and publish their lines to ``inbox`` until nobody
    answers on ``<inbox>.alive``."""

    TYPE = "rpc.follow_logs"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    REPLY = FollowLogsReply
    team_id: Id
    inbox: str = Field(pattern=INBOX_PATTERN)
    application_id: Id | None = None
    service: str = Field(default="", pattern=SERVICE_PATTERN)
    server_id: Id = "local"
    container: str | None = Field(default=None, pattern=CONTAINER_NAME_PATTERN)
    since: datetime | None = None


class FollowedLines(BaseModel):
    """What a follower publishes to its inbox (core NATS, not a catalogue message): lines in the order they
    came, and how many were left out since the last batch because they came faster than the limit."""

    lines: list[RuntimeLogLine] = []
    dropped: int = 0
