"""Bodies of teams: create one, mint a token for one, leave one."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from berth_api.domain.roles import Role
from berth_api.entrypoints.schemas import ID_PATTERN, TOKEN_NAME_PATTERN, TeamOut, TokenCreate, TokenCreated
from berth_api.entrypoints.schemas_apps import ResourceName, Strict

TeamId = Annotated[str, Field(pattern=ID_PATTERN, description="The id of a team you belong to (GET /v1/me/teams)")]


class TeamCreate(Strict):
    name: ResourceName = Field(description="Unique among the teams of this Berth (a DNS label)")
    token_name: str = Field(default="team", min_length=1, max_length=100, pattern=TOKEN_NAME_PATTERN)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="None: never expires.")


class TeamCreated(TeamOut):
    role: Role = Field(description="Yours in the new team: admin")
    token: TokenCreated = Field(description="Your first API token for the new team, shown once")


class TeamTokenCreate(TokenCreate):
    team_id: TeamId


class TeamTokenCreated(TokenCreated):
    team: TeamOut


class TeamLeave(Strict):
    team_id: TeamId
