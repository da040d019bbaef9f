"""Bodies of members, invitations and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.domain import names
from berth_api.domain.roles import Role
from berth_api.entrypoints.schemas import TOKEN_NAME_PATTERN, TeamOut, TokenCreated, UserOut

# the OpenAPI says what names.email enforces (the pattern there); the validator keeps its own messages
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=names.MAX_EMAIL,
        examples=["ada@example.com"],
        json_schema_extra={"format": "email", "pattern": names.EMAIL_PATTERN},
    ),
    AfterValidator(names.email),
]
PersonName = Annotated[
    str,
    Field(min_length=1, max_length=100, json_schema_extra={"pattern": names.DISPLAY_NAME_PATTERN}),
    AfterValidator(names.display_name),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: Role
    joined_at: datetime


class MemberUpdate(Strict):
    role: Role


class TeamMembership(TeamOut):
    role: Role


class InvitationCreate(Strict):
    email: Email
    role: Role = "developer"


class InvitationOut(BaseModel):
    id: str
    email: str
    role: Role
    state: Literal["pending", "accepted", "revoked", "expired"]
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InvitationCreated(InvitationOut):
    code: str = Field(
        description="The invitation code, shown once (only its hash is stored); single use, valid until expires_at. "
        "The invitee sends it to POST /v1/invitations/accept."
    )


class InvitationAccept(Strict):
    code: str = Field(min_length=1, max_length=200, description="The code from the invitation")
    name: PersonName | None = Field(default=None, description="Your display name (new users; default: from the e-mail)")
    token_name: str = Field(default="invitation", min_length=1, max_length=100, pattern=TOKEN_NAME_PATTERN)


class InvitationAccepted(BaseModel):
    user: UserOut
    team: TeamOut
    role: Role
    token: TokenCreated = Field(description="Your first API token for this team, shown once")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    user_id: str | None
    token_id: str | None
    method: str
    route: str = Field(description="The route template, e.g. /v1/applications/{application_id}")
    action: str = Field(description="method + route template")
    target_id: str | None
    status: int = Field(description="The HTTP status answered")
    fields: list[str] | None = Field(description="Top-level field names of the body (never values)")
    source: str | None = Field(description="The client's address")
