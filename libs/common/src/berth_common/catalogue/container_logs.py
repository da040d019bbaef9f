"""A container's recent log lines, asked of the scheduler (which reaches every server's engine):
``rpc.scheduler.container_logs``. The api names the server and the container after checking the caller's
team owns what runs there (a database today, an application's replicas later); the scheduler answers only
for a container labelled with that team."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from berth_common.catalogue.base import Id, Query, register

CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_TAIL = 5000


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
