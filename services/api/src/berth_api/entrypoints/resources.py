"""What the /v1 routes share, written once: the ids in paths and queries; a tag's router, which documents
the problems every /v1 route may answer and the 404 of a route whose path names a resource, and answers a
creation 201 and started work 202; and the routes that take nothing but the id in their path (read, list,
act on, delete), each a one-line declaration on a :class:`Resource`: path, name, use case, summary.

No ``from __future__ import annotations`` here: FastAPI reads the routes' parameter annotations, which
name a type made inside :meth:`Resource.action`.
"""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.types import DecoratedCallable
from pydantic import AliasChoices, BaseModel

from berth_api.domain.identity import Principal
from berth_api.domain.roles import Role
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import PROBLEMS, Responses, problem_doc

PathId = Annotated[str, Path(pattern=ID_PATTERN)]  # a resource's id in a path
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]  # an optional id that narrows a list
NOT_FOUND: Responses = {404: problem_doc("No such resource in this team")}
UseCase = Callable[..., Awaitable[Any]]  # (deps, principal[, the path's id]) -> a record, records or None

_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def path_parameters(path: str) -> list[str]:
    """The names of a path's parameters, in order: ``/a/{a_id}/b/{b_id}`` -> ``["a_id", "b_id"]``."""
    return _PATH_PARAMETER.findall(path)


class V1Router(APIRouter):
    """One tag's routes under /v1: each documents the problems any /v1 route may answer, and a route whose
    path names a resource documents ``not_found`` too (unless it documents its own 404)."""

    def __init__(self, tag: str, not_found: Responses = NOT_FOUND) -> None:
        super().__init__(prefix="/v1", responses=PROBLEMS, tags=[tag])
        self.not_found_doc = not_found

    def create(self, path: str, **options: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """``POST path`` that creates something: answered 201 Created."""
        return self.post(path, status_code=status.HTTP_201_CREATED, **options)

    def start(self, path: str, **options: Any) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """``POST path`` that starts work the answer does not wait for: answered 202 Accepted."""
        return self.post(path, status_code=status.HTTP_202_ACCEPTED, **options)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        responses: Responses = options.get("responses") or {}
        if path_parameters(path) and 404 not in responses:
            options["responses"] = {**self.not_found_doc, **responses}
        super().add_api_route(path, endpoint, **options)


@dataclass(frozen=True)
class Resource:
    """The routes of one kind of resource that take nothing but the ids in their path: ``call(deps,
    principal[, id])`` with the path's last parameter, whose record (or each record of a list) ``view``
    turns into ``answer`` (its own validation when no view is given). A deletion answers 204 and is for
    admins."""

    router: APIRouter
    answer: type[BaseModel] | None = None
    view: Callable[[Any], Any] | None = None
    id_pattern: str = ID_PATTERN

    def listing(self, path: str, name: str, call: UseCase, summary: str, *, role: Role = "viewer") -> None:
        self.action("GET", path, name, call, summary, role=role, many=True)

    def get(self, path: str, name: str, call: UseCase, summary: str) -> None:
        self.action("GET", path, name, call, summary, role="viewer")

    def delete(self, path: str, name: str, call: UseCase, summary: str, responses: Responses | None = None) -> None:
        self.action("DELETE", path, name, call, summary, role="admin", responses=responses, empty=True)

    def action(
        self,
        method: str,
        path: str,
        name: str,
        call: UseCase,
        summary: str,
        *,
        role: Role,
        status_code: int | None = None,
        responses: Responses | None = None,
        many: bool = False,
        empty: bool = False,
    ) -> None:
        """``method path`` for ``role``, answering ``answer`` (a list of them when ``many``; nothing, 204,
        when ``empty``)."""
        params = path_parameters(path)
        if len(params) > 1:
            raise TypeError(f"{path}: a resource route takes one path parameter at the most")
        answer = self.answer
        shape: Callable[[Any], Any] | None = None
        if empty or answer is None:
            answer_model: Any = None
            status_code = status.HTTP_204_NO_CONTENT
        else:
            one = self.view or answer.model_validate
            answer_model = list[answer] if many else answer  # type: ignore[valid-type]
            shape = (lambda records: [one(r) for r in records]) if many else one

        async def respond(request: Request, principal: Principal, *ids: str) -> Any:
            record = await call(deps(request), principal, *ids)
            return Response(status_code=status.HTTP_204_NO_CONTENT) if shape is None else shape(record)

        if params:
            ItemId = Annotated[str, Path(pattern=self.id_pattern, validation_alias=AliasChoices(params[-1]))]

            async def by_id(request: Request, item_id: ItemId, principal: Principal = require_role(role)) -> Any:
                return await respond(request, principal, item_id)

            endpoint: Callable[..., Awaitable[Any]] = by_id
        else:

            async def of_team(request: Request, principal: Principal = require_role(role)) -> Any:
                return await respond(request, principal)

            endpoint = of_team

        self.router.add_api_route(
            path,
            endpoint,
            methods=[method],
            name=name,
            response_model=answer_model,
            status_code=status_code,
            summary=summary,
            responses=responses or {},
        )
