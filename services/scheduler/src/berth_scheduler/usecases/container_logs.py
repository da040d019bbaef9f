"""``rpc.scheduler.container_logs``: the recent log lines of one container on one of the fleet's servers,
stdout and stderr apart with the engine's timestamps (``berth_common.docker.logframes``), between ``since``
and ``until`` (the newest that fit in a bus message), through the server's connection. Only a container labelled with the asking team
(``berth.team``) is answered; any other, like a missing one, is ``found: false``. A server that does not
answer is ``unreachable`` with the reason."""

from __future__ import annotations

from typing import Any

from berth_common import labels
from berth_common.catalogue import ContainerLogLine, ContainerLogsQuery, ContainerLogsReply
from berth_common.catalogue.container_logs import MAX_REPLY_BYTES
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.docker_logs import last_lines, tty_of
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain.runtime_logs import capped, log_params

log = get_logger(__name__)
READ_TIMEOUT_S = 30.0


async def container_logs(fleet: Any, query: ContainerLogsQuery) -> ContainerLogsReply:
    try:
        docker = await fleet.docker(query.server_id)
        info = await docker.inspect(query.container)
        owner = ((info or {}).get("Config") or {}).get("Labels") or {}
        if info is None or owner.get(labels.TEAM) != query.team_id:
            return ContainerLogsReply(found=False)
        params = log_params(query.tail, query.since, query.until)
        found = await last_lines(
            docker, query.container, params, query.tail, tty=tty_of(info), timeout_s=READ_TIMEOUT_S
        )
    except (DockerUnavailable, ServerRefusedError, DockerOperationError) as exc:
        log.warning("container logs: the server did not answer", server_id=query.server_id, error=str(exc)[:300])
        return ContainerLogsReply(unreachable=True, reason=str(exc)[:500])
    shown = [ContainerLogLine(stream=line.stream, time=line.time, line=line.text) for line in found]  # type: ignore[arg-type]
    return ContainerLogsReply(lines=capped(shown, MAX_REPLY_BYTES)[0])
