"""A database seen like an application: its container's log lines, asked of the scheduler
(``rpc.scheduler.container_logs``, or followed through ``rpc.scheduler.follow_logs``), and its metrics, asked of the metrics service (``rpc.metrics.query``).

The database's container carries ``berth.app`` = the database id and ``berth.team``, so the metrics
service collects it as it collects an application's replicas; the api asks for it as that target, after
checking the database is the caller's team's (another team's is a 404, as a missing one). No log line
carries a password Berth gave: the engines do not print theirs, and the credentials reach a container only
through its environment (PostgreSQL, MariaDB, MySQL, MongoDB) or its arguments (Redis), neither of which an
engine logs.
"""

from __future__ import annotations

from typing import Any

from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.usecases import Deps, databases
from berth_api.usecases.observability import QUERY_FIELDS, RETRY_AFTER_S, ask, build, labelled_metrics
from berth_api.usecases.runtime_logs import FIELDS, Follow, Window, open_follow
from berth_common import dbengines
from berth_common.catalogue import ContainerLogsQuery, ContainerLogsReply, MetricsQuery, MetricsReply, RuntimeLogLine

SCHEDULER = "scheduler"


async def _container_logs(
    deps: Deps, principal: Principal, row: dict[str, Any], database_id: str, window: Window
) -> list[RuntimeLogLine]:
    container = dbengines.container_name(database_id)
    query = ContainerLogsQuery(
        team_id=principal.team_id,
        server_id=row["server_id"],
        container=container,
        tail=window.tail,
        since=window.since,
        until=window.until,
    )
    reply = await ask(deps, SCHEDULER, query, ContainerLogsReply, fields=FIELDS)
    if reply.unreachable:
        reason = reply.reason or "its Docker engine does not answer"
        raise ProblemError(
            503,
            f"The database's server {row['server_id']} cannot be reached: {reason}. Try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if not reply.found:
        raise ProblemError(404, "The database has no container on its server (not made yet, or removed).")
    return [
        RuntimeLogLine(replica=container, server_id=row["server_id"], stream=x.stream, time=x.time, line=x.line)
        for x in reply.lines
    ]


async def logs(deps: Deps, principal: Principal, database_id: str, window: Window) -> list[RuntimeLogLine]:
    """The last lines of the database's container in the window (404: it has none, never started or
    removed)."""
    row = await databases.get(deps, principal, database_id)
    return await _container_logs(deps, principal, row, database_id, window)


async def follow_logs(deps: Deps, principal: Principal, database_id: str, window: Window) -> Follow:
    """A follow of the database's container, its last lines first (``usecases/runtime_logs.py``)."""
    row = await databases.get(deps, principal, database_id)

    async def backlog() -> list[RuntimeLogLine]:
        try:
            return await _container_logs(deps, principal, row, database_id, window)
        except ProblemError:
            return []

    target = {
        "team_id": principal.team_id,
        "server_id": row["server_id"],
        "container": dbengines.container_name(database_id),
    }
    return await open_follow(deps, target, window, backlog, ())


async def metrics(deps: Deps, principal: Principal, database_id: str, query: dict[str, Any]) -> MetricsReply:
    """Series of the database's container; none collected yet: empty."""
    await databases.get(deps, principal, database_id)
    fields = {**QUERY_FIELDS, "target_id": "/path/database_id"}
    q = build(MetricsQuery, fields, target_kind="app", target_id=database_id, team_id=principal.team_id, **query)
    return await labelled_metrics(deps, q, fields)
