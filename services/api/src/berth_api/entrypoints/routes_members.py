"""Routes of a team's members, its invitations and its audit log. Thin: role, input, use case, answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Request

from berth_api.adapters.audit import AuditFilter
from berth_api.domain import invitations
from berth_api.domain.identity import Principal
from berth_api.domain.problems import invalid_field
from berth_api.entrypoints.auth import anonymous, attempt_wait, record_failure, require_role, too_many
from berth_api.entrypoints.resources import IdFilter, PathId, Resource, V1Router
from berth_api.entrypoints.schemas import Timestamp, TokenCreated
from berth_api.entrypoints.schemas_members import (
    AuditEntry,
    InvitationAccept,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    TeamMembership,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import audit as audit_uc
from berth_api.usecases import members as uc

router = V1Router("members", {404: problem_doc("No such member or invitation in this team")})
members = Resource(router, MemberOut)
invites = Resource(router, InvitationOut)
LAST_ADMIN: Responses = {409: problem_doc("The team would have no admin left")}
ROUTE_PATTERN = r"^/v1/[A-Za-z0-9_{}/.-]{0,290}$"


@router.get("/me/teams", operation_id="list_my_teams", summary="Every team you belong to, with your role")
async def my_teams(request: Request, principal: Principal = require_role("viewer")) -> list[TeamMembership]:
    return [TeamMembership.model_validate(t) for t in await uc.teams_of(deps(request), principal.user_id)]


members.listing("/members", "list_members", uc.list_members, "The team's members and their roles", role="admin")


@router.patch(
    "/members/{user_id}",
    operation_id="update_member",
    summary="Change a member's role",
    responses=LAST_ADMIN,
)
async def change_member(
    body: MemberUpdate, request: Request, user_id: PathId, principal: Principal = require_role("admin")
) -> MemberOut:
    return MemberOut.model_validate(await uc.change_role(deps(request), principal, user_id, body.role))


members.delete(
    "/members/{user_id}",
    "remove_member",
    uc.remove_member,
    "Remove a member from the team (their tokens for this team are revoked)",
    LAST_ADMIN,
)


@router.create(
    "/invitations",
    summary="Invite someone to the team by e-mail address; the single-use code is shown once",
    responses={409: problem_doc("Already a member, or an invitation is pending")},
)
async def create_invitation(
    body: InvitationCreate, request: Request, principal: Principal = require_role("admin")
) -> InvitationCreated:
    invited = await uc.invite(deps(request), principal, body.email, body.role)
    return InvitationCreated.model_validate({**invited.row, "code": invited.code})


invites.listing(
    "/invitations", "list_invitations", uc.list_invitations, "The team's invitations (never their codes)", role="admin"
)
invites.action(
    "DELETE",
    "/invitations/{invitation_id}",
    "revoke_invitation",
    uc.revoke_invitation,
    "Revoke a pending invitation",
    role="admin",
)


@router.create(
    "/invitations/accept",
    summary="Join a team with an invitation code: makes your user (if new), membership and first API token",
    description="Needs no token. A wrong code counts as a failed authentication (rate-limited per address); "
    "a valid code is taken even while others' failures from the same address are answered 429.",
    responses={
        404: problem_doc("No invitation has this code"),
        409: problem_doc("The invitation was used already, or you are a member already"),
        410: problem_doc("The invitation expired or was revoked"),
        429: problem_doc("Too many failed attempts from this address; see Retry-After"),
    },
)
async def accept_invitation(body: InvitationAccept, request: Request, _: None = anonymous()) -> InvitationAccepted:
    parsed = invitations.parse(body.code)
    prefix = parsed[0] if parsed is not None else None
    wait = attempt_wait(request, prefix)  # a valid code is taken even while others' failures block
    if wait is not None and parsed is None:
        raise too_many(wait)
    try:
        joined = await uc.accept(deps(request), body.code, body.name, body.token_name)
    except uc.InvalidInvitationError:
        if wait is not None:
            raise too_many(wait) from None
        record_failure(request, prefix)
        raise invalid_field("/body/code", "no invitation has this code", status=404, type_="not_found") from None
    request.state.audit_actor = {
        "user_id": joined.user["id"],
        "team_id": joined.team["id"],
        "token_id": joined.token["id"],
    }
    request.state.audit_target = joined.user["id"]
    return InvitationAccepted(
        user=joined.user,  # type: ignore[arg-type]
        team=joined.team,  # type: ignore[arg-type]
        role=joined.role,
        token=TokenCreated.model_validate({**joined.token, "token": joined.plaintext}),
    )


@router.get(
    "/audit",
    operation_id="list_audit_events",
    summary="The team's audit log, newest first (page with before=<last id>)",
    description="One entry per mutating request (and per export that revealed secret values): who, action "
    "(method + route template), target, time, outcome. Bodies and values are never recorded.",
)
async def list_audit(
    request: Request,
    user_id: IdFilter = None,
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None, Query()] = None,
    route: Annotated[str | None, Query(pattern=ROUTE_PATTERN, description="A route template")] = None,
    target_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    outcome: Annotated[Literal["success", "failure"] | None, Query(description="2xx/3xx, or 4xx/5xx")] = None,
    since: Annotated[Timestamp | None, Query(description="At or after this time (ISO 8601)")] = None,
    until: Annotated[Timestamp | None, Query(description="Before this time (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Only ids below this")] = None,
    principal: Principal = require_role("admin"),
) -> list[AuditEntry]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid_field(f"/query/{name}", "a time with a zone is needed (e.g. 2025-01-01T00:00:00Z)")
    f = AuditFilter(
        user_id=user_id,
        method=method,
        route=route,
        target_id=target_id,
        status_min=400 if outcome == "failure" else None,
        status_max=399 if outcome == "success" else None,
        since=since,
        until=until,
    )
    rows = await audit_uc.list_entries(deps(request), principal, f, limit, before)
    return [AuditEntry.model_validate({**r, "action": f"{r['method']} {r['route']}"}) for r in rows]
