"""Authentication and authorization: declared once per route, checked here and nowhere else.

Every route declares either ``require_role("viewer" | "developer" | "admin")`` or ``anonymous()``;
``tests/api`` walks the routes and fails for any that declares neither. A route may name a query flag
that needs a higher role when it is set (``require_role("viewer", elevated=("reveal_secrets", "admin"))``).

The check runs before the request's body is read: ``check_before_body`` (called by ``create_app``) puts
each route's own ``RoleGuard`` in front of the route, so a caller without a valid token, or with a role
too low, is refused (401/403) whatever the body holds, and the body is not parsed for it. The guard, as
the route's dependency, then finds the principal already verified in ``request.state`` (one token check
per request).

Failed authentications are counted per source address and per token prefix (``domain.ratelimit``); over
the limit, a wrong or malformed token is answered 429 with Retry-After (and not counted), while a valid one
is still taken: others failing from the same address (every client behind one proxy shares it) or on the
same prefix never lock out a valid token. The address is the one ``domain.forwarded`` believes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from berth_api.domain import forwarded, tokens
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.domain.roles import Role, allows
from berth_api.entrypoints.state import api_state
from berth_api.settings import ApiSettings
from berth_api.usecases import identity
from berth_common.logging import get_logger

log = get_logger(__name__)

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


def client_address(request: Request, settings: ApiSettings) -> str:
    """The caller's address: the peer, or behind a trusted proxy the last X-Forwarded-For hop not a proxy."""
    peer = request.client.host if request.client is not None else "unknown"
    return forwarded.client_address(peer, request.headers.get("x-forwarded-for"), settings.proxy_networks)


def client_scheme(request: Request, settings: ApiSettings) -> str:
    """The scheme the caller used: the connection's, or a trusted proxy's X-Forwarded-Proto."""
    peer = request.client.host if request.client is not None else "unknown"
    told = request.headers.get("x-forwarded-proto")
    return forwarded.scheme(peer, request.url.scheme, told, settings.proxy_networks)


def attempt_wait(request: Request, prefix: str | None) -> int | None:
    """Seconds to wait when the caller's address or the presented prefix failed too often lately, else None.

    A blocked attempt is still checked: what it presents, if valid, is taken (others' failures never lock
    out a valid token or code); if not, it is answered 429 (``too_many``) and not counted."""
    state = api_state(request)
    return state.limiter.retry_after(client_address(request, state.settings), prefix)


def too_many(wait: int) -> ProblemError:
    return ProblemError(
        429,
        f"Too many failed authentications from this address or for this token; try again in {wait} s.",
        headers={"Retry-After": str(wait)},
    )


def record_failure(request: Request, prefix: str | None) -> None:
    state = api_state(request)
    address = client_address(request, state.settings)
    state.limiter.failed(address, prefix)
    log.warning("authentication failed", address=address, prefix=prefix, path=request.url.path)


def _bearer_token(request: Request) -> str | None:
    """The credentials of an ``Authorization: Bearer`` header (as ``HTTPBearer`` reads them), else None."""
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    return credentials if scheme.lower() == "bearer" and credentials else None


async def verify(request: Request) -> Principal:
    """The request's principal: its bearer token checked once per request (then kept in request.state,
    with the team's revision as ``team_revision``); 401 for a missing, malformed, unknown, wrong, expired
    or revoked token, 429 when the caller failed too often."""
    known = request.scope.get("state", {}).get("principal")
    if isinstance(known, Principal):
        return known
    presented = _bearer_token(request)
    if presented is None:
        raise _unauthorized("This endpoint needs an API token: Authorization: Bearer <token>.", invalid=False)
    parsed = tokens.parse(presented)
    prefix = parsed[0] if parsed is not None else None
    wait = attempt_wait(request, prefix)
    if wait is not None and parsed is None:
        raise too_many(wait)  # nothing that could be valid: not even looked up
    state = api_state(request)
    found = await identity.authenticate(state.read_pool, state.tokens, presented, state.settings.token_touch_interval_s)
    if found is None:
        if wait is not None:
            raise too_many(wait)
        record_failure(request, prefix)
        # One answer for malformed, unknown, wrong, expired and revoked tokens.
        raise _unauthorized("The API token is invalid, expired or revoked.", invalid=True)
    request.state.principal = found.principal
    request.state.team_revision = found.revision
    return found.principal


async def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # the OpenAPI's security scheme
) -> Principal:
    return await verify(request)


TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


class RoleGuard:
    """The dependency a route declares to require a team role (or higher); ``elevated`` names a query flag
    and the role it needs when set."""

    def __init__(self, role: Role, elevated: tuple[str, Role] | None = None) -> None:
        self.role = role
        self.elevated = elevated

    async def check(self, request: Request) -> Principal:
        principal = await verify(request)
        needed = self.role
        if self.elevated is not None and request.query_params.get(self.elevated[0], "").lower() in TRUE:
            needed = self.elevated[1]
        if not allows(principal.role, needed):
            raise ProblemError(
                403,
                f"This needs the {needed} role in team {principal.team_name}; the token's role is {principal.role}.",
            )
        return principal

    async def __call__(self, request: Request, principal: Principal = Depends(authenticate)) -> Principal:
        return await self.check(request)  # already verified before the body when the route is guarded


class Anonymous:
    """The dependency a route declares to be reachable without a token."""

    role = "anonymous"

    async def __call__(self) -> None:
        return None


def require_role(role: Role, *, elevated: tuple[str, Role] | None = None) -> Any:
    return Depends(RoleGuard(role, elevated))


def anonymous() -> Any:
    return Depends(Anonymous())


def declared_guard(dependant: Dependant) -> RoleGuard | None:
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleGuard):
            return dep.call
        found = declared_guard(dep)
        if found is not None:
            return found
    return None


Lean = Callable[[Request, Principal], Awaitable[Response | None]]
LEAN = "berth_lean"  # endpoint attribute: the route's handler for plain requests (``lean_handler``)


def lean_handler(lean: Lean) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a route a handler for its plain requests, run after its guard without FastAPI's request handling
    (dependencies solved anew, parameters validated by pydantic): ``lean(request, principal)`` answers, or
    returns None for anything it does not take as it is (a parameter to validate, repeated, malformed):
    then the route's FastAPI handler answers, with its validation errors. For a route on the hot path."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, LEAN, lean)
        return endpoint

    return mark


def _guarded(guard: RoleGuard, app: ASGIApp, lean: Lean | None) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        principal = await guard.check(request)  # raises 401/403/429, answered by the app's error handlers
        if lean is not None:
            response = await lean(request, principal)
            if response is not None:
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def check_before_body(routes: list[BaseRoute]) -> None:
    """Put each route's declared RoleGuard in front of it: who asks is checked before the body is read."""
    for route in routes:
        if isinstance(route, APIRoute) and (guard := declared_guard(route.dependant)) is not None:
            route.app = _guarded(guard, route.app, getattr(route.endpoint, LEAN, None))


def declared_elevation(dependant: Dependant) -> dict[str, str] | None:
    """``{flag: role}`` when the route's guard asks more for a query flag (for the OpenAPI)."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleGuard) and dep.call.elevated is not None:
            return {f"{dep.call.elevated[0]}=true": dep.call.elevated[1]}
        found = declared_elevation(dep)
        if found is not None:
            return found
    return None


def declared_access(dependant: Dependant) -> str | None:
    """The role a route declared (``anonymous`` for public routes), found anywhere in its dependencies."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleGuard | Anonymous):
            return dep.call.role
        found = declared_access(dep)
        if found is not None:
            return found
    return None
