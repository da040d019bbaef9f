"""``rpc.scheduler.runtime_logs``: an application's own log lines, every replica on every server it runs on
read at once through that server's Docker connection, each line tagged with its service, replica (the
container's name) and server, merged by the engines' timestamps (``domain/runtime_logs.py``).

Only containers labelled with the application and the asking team (``berth.app``, ``berth.team``) are read:
another team's application has none. A server that does not answer is named in ``unreachable`` and the
others' lines are still given. The tasks of the application's Swarm services are read the same way, each
through the server its node is (``usecases/swarm_logs.py``), tagged with their container's name
(``<Swarm service>.<slot>.<task id>``, as ``rpc.scheduler.replicas`` shows them) and that server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from berth_common import labels
from berth_common.catalogue import RuntimeLogLine, RuntimeLogsQuery, RuntimeLogsReply
from berth_common.catalogue.container_logs import MAX_REPLY_BYTES
from berth_common.docker import DockerUnavailable
from berth_common.docker.logframes import Line
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.docker_logs import last_lines, tty_of
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain.runtime_logs import capped, log_params, merged
from berth_scheduler.domain.swarm_app import swarm_task

log = get_logger(__name__)
READ_TIMEOUT_S = 20.0
UNANSWERED = (DockerUnavailable, ServerRefusedError, DockerOperationError)


@dataclass(frozen=True)
class Source:
    """One container whose log is read: where it runs and what it is of the application."""

    server_id: str
    container: str
    service: str = ""
    tty: bool = False
    running: bool = True

    def tagged(self, line: Line) -> RuntimeLogLine:
        return RuntimeLogLine(
            service=self.service,
            replica=self.container,
            server_id=self.server_id,
            stream=line.stream,  # type: ignore[arg-type]
            time=line.time,
            line=line.text,
        )


def is_running(info: dict[str, Any]) -> bool:
    return (info.get("State") or {}).get("Status") in ("running", "restarting", "paused")


async def sources_of(
    fleet: Any, team_id: str, application_id: str, service: str = ""
) -> tuple[list[Source], dict[str, str]]:
    """The application's containers of the team (of ``service``, or all) on every server it has containers
    on, and the servers that did not answer (server id -> why)."""
    async with fleet.sessionmaker() as s:
        servers = await store.servers_of_application(s, application_id)
    wanted = {labels.APP: application_id, labels.TEAM: team_id, **({labels.SERVICE: service} if service else {})}
    unreachable: dict[str, str] = {}

    async def on(server: str) -> list[Source]:
        try:
            docker = await fleet.docker(server)
            found = [c for c in await docker.list_containers(wanted) if not swarm_task(c.labels)]
            infos = await asyncio.gather(*(docker.inspect(c.name) for c in found))
        except UNANSWERED as exc:
            log.warning("runtime logs: the server did not answer", server_id=server, error=str(exc)[:300])
            unreachable[server] = str(exc)[:300]
            return []
        return [
            Source(server, c.name, c.labels.get(labels.SERVICE, ""), tty_of(info), is_running(info))
            for c, info in zip(found, infos, strict=True)
            if info is not None
        ]

    async def tasks() -> list[Source]:
        from berth_scheduler.usecases.swarm_logs import task_containers  # Swarm modules load only when asked

        found, missed = await task_containers(fleet, team_id, application_id, service)
        unreachable.update(missed)
        return [Source(str(t.server_id), t.name, t.service, False, t.running) for t in found]

    placed = await asyncio.gather(tasks(), *(on(server) for server in servers))
    return [source for group in placed for source in group], unreachable


async def read_source(
    fleet: Any, source: Source, tail: int, since: datetime | None, until: datetime | None
) -> list[RuntimeLogLine]:
    """The last ``tail`` lines of one container between ``since`` and ``until``."""
    docker = await fleet.docker(source.server_id)
    params = log_params(tail, since, until)
    found = await last_lines(docker, source.container, params, tail, tty=source.tty, timeout_s=READ_TIMEOUT_S)
    return [source.tagged(line) for line in found]


async def runtime_logs(fleet: Any, query: RuntimeLogsQuery) -> RuntimeLogsReply:
    found, unreachable = await sources_of(fleet, query.team_id, query.application_id, query.service)

    async def one(source: Source) -> list[RuntimeLogLine]:
        try:
            return await read_source(fleet, source, query.tail, query.since, query.until)
        except UNANSWERED as exc:
            if isinstance(exc, DockerOperationError) and exc.status == 404:
                return []  # removed since it was listed
            unreachable.setdefault(source.server_id, str(exc)[:300])
            return []

    groups = await asyncio.gather(*(one(source) for source in found))
    lines, truncated = capped(merged(groups, query.tail), MAX_REPLY_BYTES)
    return RuntimeLogsReply(lines=lines, unreachable=unreachable, truncated=truncated)
