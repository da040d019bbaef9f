"""Routes under /v1. Thin: each declares its role, validates input, calls a handler, shapes the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request, status

from berth_api.domain.identity import Principal
from berth_api.domain.problems import MEDIA_TYPE, Problem, ProblemError
from berth_api.domain.status import PlatformStatus
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.schemas import (
    ID_PATTERN,
    CurrentToken,
    Me,
    TeamOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
)
from berth_api.entrypoints.state import api_state
from berth_api.usecases import identity
from berth_api.usecases.status import platform_status as ask_platform_status


def problem_doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {MEDIA_TYPE: {}}}


Responses = dict[int | str, dict[str, Any]]

PROBLEMS: Responses = {
    401: problem_doc("No token, or an invalid, expired or revoked one"),
    403: problem_doc("The token's role in its team is not enough"),
    422: problem_doc("Invalid input; `errors` names each field"),
    429: problem_doc("Too many failed authentications from this address or for this token; see Retry-After"),
}

router = APIRouter(prefix="/v1", responses=PROBLEMS)


@router.get("/me", operation_id="get_me", tags=["account"], summary="Who the token belongs to: user, team and role")
async def me(principal: Principal = require_role("viewer")) -> Me:
    return Me(
        user=UserOut(id=principal.user_id, email=principal.user_email, name=principal.user_name),
        team=TeamOut(id=principal.team_id, name=principal.team_name),
        role=principal.role,
        token=CurrentToken(id=principal.token_id, name=principal.token_name),
    )


@router.get(
    "/status",
    operation_id="get_platform_status",
    tags=["platform"],
    summary="Health of every service, asked over the bus",
)
async def platform_status(request: Request, _: Principal = require_role("viewer")) -> PlatformStatus:
    state = api_state(request)
    return await ask_platform_status(state.context().bus, state.settings.status_timeout_s)


@router.get("/tokens", tags=["account"], summary="The team's API tokens (never their secrets)")
async def list_tokens(request: Request, principal: Principal = require_role("admin")) -> list[TokenOut]:
    rows = await identity.list_tokens(api_state(request).context().sessionmaker, principal.team_id)
    return [TokenOut.model_validate(r) for r in rows]


@router.post(
    "/tokens",
    tags=["account"],
    status_code=status.HTTP_201_CREATED,
    summary="Create a token for yourself in this team; the token is shown once",
)
async def create_token(
    body: TokenCreate, request: Request, principal: Principal = require_role("admin")
) -> TokenCreated:
    issued = await identity.issue_token(
        api_state(request).context().sessionmaker, principal, body.name, body.expires_in_days
    )
    return TokenCreated.model_validate({**issued.row, "token": issued.plaintext})


@router.delete(
    "/tokens/{token_id}",
    tags=["account"],
    summary="Revoke a token of this team",
    responses={404: problem_doc("No such token in this team")},
)
async def revoke_token(
    request: Request,
    token_id: str = Path(pattern=ID_PATTERN),
    principal: Principal = require_role("admin"),
) -> TokenOut:
    row = await identity.revoke_token(api_state(request).context().sessionmaker, principal.team_id, token_id)
    if row is None:
        raise ProblemError(404, f"No token {token_id} in team {principal.team_name}.")
    return TokenOut.model_validate(row)
