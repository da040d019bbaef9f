"""Routes that only relay to another service over the bus (``rpc.<service>.<name>``), written once for the
notification and metrics routes: role, the caller's team and the path's id into the query, answer.

No ``from __future__ import annotations`` here: FastAPI reads the routes' parameter annotations, which
name a type made inside :func:`delete_route`.
"""

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import AliasChoices

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses
from berth_api.usecases.observability import Fields, ask
from berth_common.catalogue import Query

_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


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
    id_name = _PATH_PARAMETER.findall(path)[-1]
    reply = query.REPLY
    if reply is None:
        raise TypeError(f"{query.__name__} declares no REPLY")
    ItemId = Annotated[str, Path(pattern=ID_PATTERN, validation_alias=AliasChoices(id_name))]

    async def delete(request: Request, item_id: ItemId, principal: Principal = require_role("admin")) -> Response:
        q = query.model_validate({"team_id": principal.team_id, id_name: item_id})
        await ask(deps(request), service, q, reply, fields=fields)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    router.add_api_route(
        path,
        delete,
        methods=["DELETE"],
        name=name,
        status_code=status.HTTP_204_NO_CONTENT,
        summary=summary,
        responses=responses,
    )
