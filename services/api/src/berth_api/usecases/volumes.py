"""An application's named volumes: what the scheduler finds on the servers (with their size), and what a
removal keeps (from the desired state).

``GET /v1/applications/{id}/volumes`` asks the scheduler (``rpc.scheduler.volumes``, scoped to the team): it
reads each engine's disk usage through the server's connection. A scheduler that does not answer is a 503
answered ``available: false`` with the reason (as an application's ``runtime``), never an empty list that
would read as "no volume".
"""

from __future__ import annotations

from typing import Any

from berth_api.adapters import applications as repo
from berth_api.domain import mounts
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing
from berth_common.bus import QueryFailedError, ServiceUnavailableError
from berth_common.catalogue import VolumesQuery, VolumesReply
from berth_common.logging import get_logger

log = get_logger(__name__)


def declared(config: dict[str, Any], application_id: str) -> list[dict[str, Any]]:
    """Every named volume of the desired state per server, with its mount path and size hint."""
    hints = {
        v["name"]: (v["path"], v.get("size_mb"))
        for svc in config.get("services") or []
        for v in svc.get("volumes") or []
    }
    return [
        {**k, "path": hints[k["name"]][0], "size_mb": hints[k["name"]][1]}
        for k in mounts.kept_volumes(config.get("services") or [], application_id)
    ]


async def volumes_of(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    """The application's volumes on its servers, each with its size in bytes (the engine's count)."""
    async with deps.sessionmaker() as s:
        row = await repo.get_application(s, principal.team_id, application_id)
    if row is None:
        raise application_missing(principal, application_id)
    if not deps.bus.connected:
        return _unavailable(application_id, "the scheduler cannot be asked: the bus is unavailable")
    query = VolumesQuery(application_id=application_id, team_id=principal.team_id)
    try:
        reply = await deps.bus.request(
            "scheduler", "volumes", query, VolumesReply, timeout=deps.settings.volumes_timeout_s
        )
    except (ServiceUnavailableError, QueryFailedError) as exc:
        log.warning("volumes query failed", application_id=application_id, error=str(exc))
        return _unavailable(application_id, f"the scheduler did not answer: {str(exc)[:300]}")
    wanted = {(d["server_id"], d["name"]): d for d in declared(row["config"], application_id)}
    found = []
    for v in reply.volumes:
        spec = wanted.get((v.server_id, v.name), {})
        found.append({**v.model_dump(mode="json"), "path": spec.get("path"), "size_mb": spec.get("size_mb")})
    return {"application_id": application_id, "available": True, "volumes": found, "unreachable": reply.unreachable}


def _unavailable(application_id: str, error: str) -> dict[str, Any]:
    return {"application_id": application_id, "available": False, "error": error, "volumes": [], "unreachable": []}
