"""Routes that only relay to another service over the bus (``rpc.<service>.<name>``), written once for the
notification and metrics routes: the caller's team and the path's id into the query, the reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from berth_api.domain.identity import Principal
from berth_api.entrypoints.resources import UseCase
from berth_api.usecases import Deps
from berth_api.usecases.observability import Fields, ask
from berth_common.catalogue import Query

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


async def answer_of(
    d: Deps,
    service: str,
    query: Query,
    reply: type[R],
    answer: Callable[[R], T | None],
    *,
    fields: Fields,
    timeout: float | None = None,
) -> T:
    """The ``answer`` of ``service``'s reply to ``query``: a reply without a problem carries it (a refusal
    is raised by ``ask``)."""
    found = answer(await ask(d, service, query, reply, fields=fields, timeout=timeout))
    assert found is not None
    return found


def relayed_delete(service: str, query: type[Query]) -> UseCase:
    """The use case of a deletion ``service`` carries out (a :meth:`Resource.delete` answers 204): ``query``
    holds the caller's team and the item's id, its one other field, named as the route's path parameter
    (so a refusal naming it points into the path)."""
    (id_name,) = (name for name in query.model_fields if name != "team_id")
    reply = query.REPLY
    if reply is None:
        raise TypeError(f"{query.__name__} declares no REPLY")
    fields = {id_name: f"/path/{id_name}"}

    async def delete(d: Deps, principal: Principal, item_id: str) -> None:
        q = query.model_validate({"team_id": principal.team_id, id_name: item_id})
        await ask(d, service, q, reply, fields=fields)

    return delete
