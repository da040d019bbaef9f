"""Routes of an application's own logs: the last lines of every replica merged (JSON), or followed as
Server-Sent Events. Thin: role, input, use case, answer. A database's logs are in ``routes_database_ops``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.schemas import Flag, Timestamp
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import runtime_logs as uc
from berth_common.catalogue import RuntimeLogLine
from berth_common.catalogue.container_logs import MAX_TAIL, SERVICE_PATTERN

router = V1Router("applications")
EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}

Tail = Annotated[int, Query(ge=1, le=MAX_TAIL, description="How many of the last lines (of all replicas together)")]
Since = Annotated[Timestamp | None, Query(description="Only lines written at or after this time (RFC 3339)")]
Until = Annotated[Timestamp | None, Query(description="Only lines written at or before this time (RFC 3339)")]
Follow = Annotated[
    bool, Query(description="Stream as Server-Sent Events: the last lines, then each new one as it is written")
]
FOLLOW_DOC = (
    "`follow=false`: JSON, oldest first. `follow=true`: `text/event-stream`: one `event: line` per line (data: "
    "the same object as JSON), the last `tail` lines first, then each new one as it is written; a "
    "`: keepalive` comment every 15 s; it ends when the client goes away (or after `until`). Secret values "
    "are redacted."
)


class RuntimeLogsOut(BaseModel):
    application_id: str
    lines: list[RuntimeLogLine] = Field(description="Oldest first; every replica of every server merged by time")
    unreachable: dict[str, str] = Field(
        default_factory=dict, description="Servers whose lines are missing: server id -> why"
    )
    truncated: Flag = Field(default=False, description="The oldest lines were left out to keep the answer small")


def streamed(follow: uc.Follow) -> StreamingResponse:
    return StreamingResponse(follow.events(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)


@router.get(
    "/applications/{application_id}/logs",
    operation_id="get_application_logs",
    summary="The application's own log lines, every replica merged, as JSON or a live event stream",
    description=FOLLOW_DOC,
    response_model=None,
    responses={
        200: {"model": RuntimeLogsOut, "description": "The lines", "content": {EVENT_STREAM: {}}},
        503: problem_doc("The scheduler or the control plane's Docker engine cannot be reached"),
    },
)
async def application_logs(
    request: Request,
    application_id: PathId,
    service: Annotated[
        str, Query(pattern=SERVICE_PATTERN, max_length=63, description="Only this service's replicas")
    ] = "",
    tail: Tail = 200,
    since: Since = None,
    until: Until = None,
    follow: Follow = False,
    principal: Principal = require_role("viewer"),
) -> Any:
    d = deps(request)
    window = uc.Window(tail, since, until)
    if follow:
        return streamed(await uc.follow_application(d, principal, application_id, service, window))
    lines, reply = await uc.tail(d, principal, application_id, service, window)
    return RuntimeLogsOut(
        application_id=application_id, lines=lines, unreachable=reply.unreachable, truncated=reply.truncated
    )
