"""Request and response bodies of the HTTP API (its public contract, documented in the OpenAPI)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from berth_api.domain.roles import Role

TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
ID_PATTERN = r"^[0-9a-f]{32}$"
# A JSON boolean and nothing else: ``0``, ``1`` or ``"yes"`` in a body is refused (422), as the OpenAPI's
# ``"type": "boolean"`` says, not read as one.
Flag = Annotated[bool, Strict()]
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _rfc3339_only(value: Any) -> Any:
    """A number is no ``date-time`` (pydantic would read it as a Unix time): refused, as the schema says."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("not an RFC 3339 date-time (2026-01-31T12:00:00Z)")
    return value


# A ``date-time`` in a query: RFC 3339 text only.
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339_only)]


class UserOut(BaseModel):
    id: str
    email: str
    name: str


class TeamOut(BaseModel):
    id: str
    name: str


class TokenOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="Public part of the token (berth_<prefix>_...), safe to show.")
    user_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token. Shown once: only its hash is stored.")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=TOKEN_NAME_PATTERN)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="None: never expires.")


class CurrentToken(BaseModel):
    id: str
    name: str


class Me(BaseModel):
    user: UserOut
    team: TeamOut
    role: Role
    token: CurrentToken


def given(fields: tuple[str, ...], *, absent: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON Schema branch (for ``anyOf``): each of ``fields`` is there and not null, each of ``absent`` is
    missing or null. The OpenAPI says with it which fields go together (generated clients and schemathesis
    see it); the model's validator still gives the 422 naming the field."""
    present: dict[str, Any] = {name: {"not": {"type": "null"}} for name in fields}
    branch: dict[str, Any] = {"properties": {**present, **{name: {"type": "null"} for name in absent}}}
    return {"required": list(fields), **branch} if fields else branch
