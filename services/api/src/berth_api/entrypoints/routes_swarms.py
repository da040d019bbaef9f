"""Routes of Swarms: make one of the team's servers (or adopt a manager's), see its nodes and state, form it
again, forget it (``?dissolve=true`` also takes it apart). Thin: role, input, use case, answer. No answer
carries a join token: the api never has one. Swarms run the team's workloads on its servers: for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import Resource, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import swarms as uc
from berth_common.values import DNS_LABEL_PATTERN

router = V1Router("swarms", {404: problem_doc("No such Swarm in this team")})
CONFLICT: Responses = {409: problem_doc("The name is taken, or a server is in another Swarm")}
ServerRef = Annotated[str, Field(pattern=ID_PATTERN, description="The id of one of the team's servers")]


class SwarmCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=63, examples=["edge"], json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
        AfterValidator(names.resource_name),
    ]
    manager_server_id: ServerRef
    worker_server_ids: list[ServerRef] = Field(default=[], max_length=100)
    adopt: Flag = Field(
        default=False, description="The manager is in a Swarm already: adopt it (its nodes as they are) instead of init"
    )


class NodeOut(BaseModel):
    node_id: str
    server_id: str | None = Field(default=None, description="The Berth server this node is (None: not Berth's)")
    hostname: str
    address: str
    role: Literal["manager", "worker"]
    state: str
    availability: str


class SwarmOut(BaseModel):
    id: str
    name: str
    manager_server_id: str
    worker_server_ids: list[str]
    adopt: Flag
    network: str = Field(description="The attachable overlay network Berth's services and Traefik share")
    state: Literal["forming", "ready", "failed"]
    reason: str = Field(default="", description="What to fix when forming failed")
    cluster_id: str | None = None
    nodes: list[NodeOut] = []
    formed_at: datetime | None = None
    created_at: datetime | None = None


def swarm_out(row: dict[str, Any]) -> SwarmOut:
    return SwarmOut.model_validate({k: v for k, v in row.items() if k in SwarmOut.model_fields})


swarms = Resource(router, SwarmOut, swarm_out)


@router.create(
    "/swarms", summary="Form a Swarm of the team's servers, or adopt one (state: forming, then the result)",
    responses=CONFLICT,
)  # fmt: skip
async def create_swarm(body: SwarmCreate, request: Request, principal: Principal = require_role("admin")) -> SwarmOut:
    given = uc.SwarmInput(body.name, body.manager_server_id, tuple(body.worker_server_ids), body.adopt)
    return swarm_out(await uc.create(deps(request), principal, given))


swarms.listing("/swarms", "list_swarms", uc.list_all, "The team's Swarms")
swarms.get("/swarms/{swarm_id}", "get_swarm", uc.get, "A Swarm: its nodes and state")
swarms.action(
    "POST",
    "/swarms/{swarm_id}/form",
    "form_swarm",
    uc.form_again,
    "Form the Swarm again: after a fix, or to see its nodes now (state: forming, then the result)",
    role="admin",
    status_code=status.HTTP_202_ACCEPTED,
)


@router.delete(
    "/swarms/{swarm_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a Swarm; it keeps running unless dissolve=true (then its nodes leave it)",
)
async def delete_swarm(
    request: Request,
    swarm_id: Annotated[str, Path(pattern=ID_PATTERN)],
    dissolve: Annotated[bool, Query(description="Take the Swarm apart too: every node leaves it")] = False,
    principal: Principal = require_role("admin"),
) -> Response:
    await uc.delete(deps(request), principal, swarm_id, dissolve)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
