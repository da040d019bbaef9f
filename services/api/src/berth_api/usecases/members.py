"""A team's members (list, change a role, remove) and invitations (make, list, revoke, accept).

A team never loses its last admin: the admins' membership rows are locked while a role change or a removal
is checked, so two concurrent demotions cannot both pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from berth_api.adapters import identity as identity_repo
from berth_api.adapters import members as repo
from berth_api.domain import invitations, tokens
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.domain.roles import Role
from berth_api.usecases import Deps
from berth_common.logging import get_logger

log = get_logger(__name__)


class InvalidInvitationError(Exception):
    """A code that is malformed, unknown or whose secret does not match (one answer for all three)."""


@dataclass(frozen=True, repr=False)
class Invited(tokens.ShownOnce):
    code: str


@dataclass(frozen=True)
class Joined:
    user: dict[str, Any]
    team: dict[str, Any]
    role: Role
    token: dict[str, Any]
    plaintext: str

    def __repr__(self) -> str:
        return f"Joined(user={self.user.get('id')!r}, team={self.team.get('id')!r})"


def member_missing(principal: Principal, user_id: str) -> ProblemError:
    return not_in_team("member", user_id, principal.team_name)


def _last_admin(principal: Principal) -> ProblemError:
    return ProblemError(409, f"This is the last admin of team {principal.team_name}; make another member admin first.")


async def list_members(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_members(s, principal.team_id)


async def change_role(deps: Deps, principal: Principal, user_id: str, role: Role) -> dict[str, Any]:
    async with deps.sessionmaker() as s, s.begin():
        admins = await repo.lock_admins(s, principal.team_id)
        member = await repo.get_member(s, principal.team_id, user_id)
        if member is None:
            raise member_missing(principal, user_id)
        if member["role"] == "admin" and role != "admin" and admins == [user_id]:
            raise _last_admin(principal)
        await repo.set_role(s, principal.team_id, user_id, role)
    log.info("member role changed", team_id=principal.team_id, user_id=user_id, role=role)
    return {**member, "role": role}


async def remove_member(deps: Deps, principal: Principal, user_id: str) -> None:
    """Remove the membership and revoke the member's tokens of this team (their other teams are untouched)."""
    async with deps.sessionmaker() as s, s.begin():
        admins = await repo.lock_admins(s, principal.team_id)
        member = await repo.get_member(s, principal.team_id, user_id)
        if member is None:
            raise member_missing(principal, user_id)
        if member["role"] == "admin" and admins == [user_id]:
            raise _last_admin(principal)
        revoked = await repo.remove_member(s, principal.team_id, user_id, datetime.now(UTC))
    log.info("member removed", team_id=principal.team_id, user_id=user_id, tokens_revoked=revoked)


# --- invitations -----------------------------------------------------------------------------------


def invitation_out(row: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    state = invitations.state_of(row["accepted_at"], row["revoked_at"], row["expires_at"], now or datetime.now(UTC))
    return {**row, "state": state}


async def invite(deps: Deps, principal: Principal, email: str, role: Role) -> Invited:
    """A pending invitation to the caller's team; its code exists only in the return value."""
    now = datetime.now(UTC)
    code = invitations.generate()
    async with deps.sessionmaker() as s, s.begin():
        user = await repo.user_by_email(s, email)
        if user is not None and await repo.is_member(s, principal.team_id, user["id"]):
            raise invalid_field(
                "/body/email", f"{email} is a member of this team already", status=409, type_="conflict"
            )
        if await repo.pending_for(s, principal.team_id, email, now):
            raise invalid_field(
                "/body/email", f"{email} has a pending invitation; revoke it first", status=409, type_="conflict"
            )
        row = await repo.insert_invitation(
            s,
            {
                "team_id": principal.team_id,
                "email": email,
                "role": role,
                "prefix": code.token.prefix,
                "hash": code.token.hash,
                "created_by": principal.user_id,
                "expires_at": now + timedelta(seconds=deps.settings.invitation_ttl_s),
            },
        )
    log.info("invitation created", id=row["id"], team_id=principal.team_id, role=role)
    return Invited(invitation_out(row, now), code.plaintext)


async def list_invitations(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    async with deps.sessionmaker() as s:
        return [invitation_out(r, now) for r in await repo.list_invitations(s, principal.team_id)]


async def revoke_invitation(deps: Deps, principal: Principal, invitation_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.revoke_invitation(s, principal.team_id, invitation_id, datetime.now(UTC))
    if row is None:
        raise not_in_team("invitation", invitation_id, principal.team_name)
    log.info("invitation revoked", id=invitation_id, team_id=principal.team_id)
    return invitation_out(row)


async def accept(deps: Deps, code: str, name: str | None, token_name: str) -> Joined:
    """Join the invitation's team: the user (made, or found by e-mail), the membership, a first API token.

    Raises InvalidInvitationError for a malformed, unknown or wrong code; a used one is 409, an expired or
    revoked one 410. The invitation row is locked, so a code is accepted at most once.
    """
    parsed = invitations.parse(code)
    if parsed is None:
        raise InvalidInvitationError
    prefix, secret = parsed
    now = datetime.now(UTC)
    token = tokens.generate()
    async with deps.sessionmaker() as s, s.begin():
        inv = await repo.lock_invitation(s, prefix)
        matches = tokens.verify(secret, inv["hash"] if inv else "0" * 64)
        if inv is None or not matches:
            raise InvalidInvitationError
        state = invitations.state_of(inv["accepted_at"], inv["revoked_at"], inv["expires_at"], now)
        if state == "accepted":
            raise ProblemError(409, "This invitation has been used already; ask an admin of the team for a new one.")
        if state in ("expired", "revoked"):
            raise ProblemError(410, f"This invitation is {state}; ask an admin of the team for a new one.")
        user = await repo.user_by_email(s, inv["email"])
        if user is not None:
            if user["disabled_at"] is not None:
                raise ProblemError(409, "The account invited is disabled.")
            if await repo.is_member(s, inv["team_id"], user["id"]):
                raise ProblemError(409, f"{inv['email']} is a member of this team already.")
            user_id = user["id"]
        else:
            user_id = await identity_repo.create_user(s, inv["email"], name or inv["email"].split("@")[0][:100])
            user = {"id": user_id, "email": inv["email"], "name": name or inv["email"].split("@")[0][:100]}
        await identity_repo.add_member(s, user_id, inv["team_id"], inv["role"])
        await repo.mark_accepted(s, inv["id"], user_id, now)
        row = await identity_repo.insert_token(s, user_id, inv["team_id"], token_name, token, None)
    log.info("invitation accepted", id=inv["id"], team_id=inv["team_id"], user_id=user_id, token_prefix=token.prefix)
    return Joined(
        user={"id": user_id, "email": user["email"], "name": user["name"]},
        team={"id": inv["team_id"], "name": inv["team_name"]},
        role=inv["role"],
        token=row,
        plaintext=token.plaintext,
    )


async def teams_of(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.teams_of(s, user_id)
