"""Routes that only relay to another service over the bus (``rpc.<service>.<name>``), written once for the
notification and metrics routes: role, the caller's team and the path's id into the query, answer."""

from __future__ import annotations

from fastapi import APIRouter

from berth_api.domain.identity import Principal
from berth_api.entrypoints.resources import Resource, path_parameters
from berth_api.entrypoints.v1 import Responses
from berth_api.usecases import Deps
from berth_api.usecases.observability import Fields, ask
from berth_common.catalogue import Query


def delete_route(
    router: APIRouter,
    path: str,
    *,
    name: str,
    service: str,
    query: type[Query],
    fields: Fields,
    summary: str,
    responses: Responses,
) -> None:
    """``DELETE path`` (admin): ``service`` deletes the caller's team's item named by the path's last
    parameter (``query`` has ``team_id`` and a field of that name); 204, or the service's refusal."""
    id_name = path_parameters(path)[-1]
    reply = query.REPLY
    if reply is None:
        raise TypeError(f"{query.__name__} declares no REPLY")

    async def delete(d: Deps, principal: Principal, item_id: str) -> None:
        q = query.model_validate({"team_id": principal.team_id, id_name: item_id})
        await ask(d, service, q, reply, fields=fields)

    Resource(router).delete(path, name, delete, summary, responses)
