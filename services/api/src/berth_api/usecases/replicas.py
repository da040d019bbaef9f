"""An application's replicas as the scheduler sees them (``rpc.scheduler.replicas``), with the names of the
team's servers they run on: the ``runtime`` of the application's detail."""

from __future__ import annotations

from dataclasses import dataclass, field

from berth_api.adapters import servers as servers_repo
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps
from berth_common.bus import QueryFailedError, ServiceUnavailableError
from berth_common.catalogue import ReplicasQuery, ReplicasReply
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ReplicasAnswer:
    """The scheduler's answer about an application's containers (the detail's ``runtime``), or why none came."""

    available: bool
    error: str | None = None
    reply: ReplicasReply | None = None
    server_names: dict[str, str] = field(default_factory=dict)  # server id -> name, for the replicas' servers


async def runtime_of(deps: Deps, principal: Principal, application_id: str) -> ReplicasAnswer:
    """The application's containers as the scheduler sees them, with the names of the team's servers they
    run on; a silent scheduler is reported, not raised."""
    answer = await _replicas(deps, application_id)
    if answer.reply is None:
        return answer
    ids = sorted({r.server or r.node or "local" for r in answer.reply.replicas} - {"local"})
    if not ids:
        return answer
    async with deps.sessionmaker() as s:
        names = {r["id"]: r["name"] for r in await servers_repo.servers_named(s, principal.team_id, ids)}
    return ReplicasAnswer(available=True, reply=answer.reply, server_names=names)


async def _replicas(deps: Deps, application_id: str) -> ReplicasAnswer:
    query = ReplicasQuery(application_id=application_id)
    if not deps.bus.connected:
        return ReplicasAnswer(available=False, error="the scheduler cannot be asked: the bus is unavailable")
    try:
        reply = await deps.bus.request(
            "scheduler", "replicas", query, ReplicasReply, timeout=deps.settings.replicas_timeout_s
        )
    except ServiceUnavailableError as exc:
        return ReplicasAnswer(available=False, error=str(exc))
    except QueryFailedError as exc:
        return ReplicasAnswer(available=False, error=str(exc)[:500])
    except Exception as exc:
        log.warning("replicas query failed", application_id=application_id, error=str(exc))
        return ReplicasAnswer(available=False, error="the scheduler could not be asked (the bus is unavailable)")
    return ReplicasAnswer(available=True, reply=reply)
