"""Authentication and authorization: declared once per route, checked here and nowhere else.

Every route declares either ``require_role("viewer" | "developer" | "admin")`` or ``anonymous()``;
``tests/api`` walks the routes and fails for any that declares neither.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from berth_api import handlers
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.domain.roles import Role, allows
from berth_api.entrypoints.state import api_state

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    bearerFormat="berth_<prefix>_<secret>",
    description="An API token (`berth token create`, or `<data dir>/admin.token` after the first start).",
)
REALM = 'Bearer realm="berth"'


def _unauthorized(detail: str, *, invalid: bool) -> ProblemError:
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return ProblemError(401, detail, headers={"WWW-Authenticate": challenge})


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    if credentials is None:
        raise _unauthorized("This endpoint needs an API token: Authorization: Bearer <token>.", invalid=False)
    state = api_state(request)
    principal = await handlers.authenticate(
        state.context().sessionmaker, credentials.credentials, state.settings.token_touch_interval_s
    )
    if principal is None:
        # One answer for malformed, unknown, wrong, expired and revoked tokens.
        raise _unauthorized("The API token is invalid, expired or revoked.", invalid=True)
    request.state.principal = principal
    return principal


class RoleGuard:
    """The dependency a route declares to require a team role (or higher)."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, principal: Principal = Depends(authenticate)) -> Principal:
        if not allows(principal.role, self.role):
            raise ProblemError(
                403,
                f"This needs the {self.role} role in team {principal.team_name}; the token's role is {principal.role}.",
            )
        return principal


class Anonymous:
    """The dependency a route declares to be reachable without a token."""

    role = "anonymous"

    async def __call__(self) -> None:
        return None


def require_role(role: Role) -> Any:
    return Depends(RoleGuard(role))


def anonymous() -> Any:
    return Depends(Anonymous())


def declared_access(dependant: Dependant) -> str | None:
    """The role a route declared (``anonymous`` for public routes), found anywhere in its dependencies."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleGuard | Anonymous):
            return dep.call.role
        found = declared_access(dep)
        if found is not None:
            return found
    return None
