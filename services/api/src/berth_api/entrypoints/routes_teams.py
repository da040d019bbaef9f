"""Routes of teams: create one, mint a token for a team you belong to (and revoke one of your own), leave
one, delete an empty one.
Thin: role, input, use case, answer. The list of your teams is ``GET /v1/me/teams`` (routes_members).

Tokens are per team: each acts in its own team with the role its user has there, so switching teams is
using another token. The audit row of a creation, a token minted and a leave goes into the log of the team
it concerns (``audit_team``); a refusal stays in the log of the token's team.
"""

from __future__ import annotations

from fastapi import Path, Request, Response, status

from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.entrypoints.audit import TEAM as AUDIT_TEAM
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN, TokenCreated, TokenOut
from berth_api.entrypoints.schemas_teams import (
    TeamCreate,
    TeamCreated,
    TeamLeave,
    TeamTokenCreate,
    TeamTokenCreated,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import identity
from berth_api.usecases import teams as uc

NOT_MEMBER = problem_doc("You are not a member of this team (one that does not exist is answered the same)")
router = V1Router("teams", {404: NOT_MEMBER})


def _audit_in(request: Request, team_id: str) -> None:
    setattr(request.state, AUDIT_TEAM, team_id)


@router.create(
    "/teams",
    operation_id="create_team",
    summary="Create a team: you become its admin and get your first token for it, shown once",
    description="Any signed-in user may. The token acts in the new team; keep using your other tokens for "
    "your other teams.",
    responses={409: problem_doc("A team has this name already")},
)
async def create_team(body: TeamCreate, request: Request, principal: Principal = require_role("viewer")) -> TeamCreated:
    made = await uc.create_team(deps(request), principal, body.name, body.token_name, body.expires_in_days)
    _audit_in(request, made.team["id"])
    token = TokenCreated.model_validate({**made.row, "token": made.plaintext})
    return TeamCreated(**made.team, role="admin", token=token)


@router.create(
    "/me/tokens",
    operation_id="create_my_team_token",
    summary="Mint a token for yourself in a team you belong to (any role); the token is shown once",
    description="Tokens are per team: the new token acts in `team_id` with the role you have there.",
    responses={404: NOT_MEMBER},
)
async def create_my_team_token(
    body: TeamTokenCreate, request: Request, principal: Principal = require_role("viewer")
) -> TeamTokenCreated:
    minted = await uc.mint_token(deps(request), principal, body.team_id, body.name, body.expires_in_days)
    _audit_in(request, body.team_id)
    return TeamTokenCreated.model_validate({**minted.row, "token": minted.plaintext, "team": minted.team})


@router.post(
    "/me/teams/leave",
    operation_id="leave_team",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Leave a team you belong to; your tokens for it are revoked",
    responses={404: NOT_MEMBER, 409: problem_doc("You are the team's last admin")},
)
async def leave_team(body: TeamLeave, request: Request, principal: Principal = require_role("viewer")) -> Response:
    await uc.leave(deps(request), principal, body.team_id)
    _audit_in(request, body.team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/teams/{team_id}",
    operation_id="delete_team",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a team you are an admin of, once it holds nothing and no one else",
    responses={409: problem_doc("The team still holds something; the answer names what")},
)
async def delete_team(request: Request, team_id: PathId, principal: Principal = require_role("admin")) -> Response:
    await uc.delete_team(deps(request), principal, team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/me/tokens/{token_id}",
    operation_id="revoke_my_token",
    summary="Revoke one of your own tokens, in any team you belong to (any role)",
    responses={404: problem_doc("You have no such token")},
)
async def revoke_my_token(
    request: Request, token_id: str = Path(pattern=ID_PATTERN), principal: Principal = require_role("viewer")
) -> TokenOut:
    row = await identity.revoke_own_token(deps(request).sessionmaker, principal.user_id, token_id)
    if row is None:
        raise ProblemError(404, f"You have no token {token_id}.")
    _audit_in(request, row["team_id"])
    return TokenOut.model_validate(row)
