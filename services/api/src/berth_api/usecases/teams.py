"""Teams: create one (its creator is its admin), mint a token for a team you belong to (tokens are per
team: switching teams is using another token), leave a team, delete an empty one.

A team never loses its last admin by a leave (the admins' rows are locked while it is checked, as for a
role change); a team is deleted only when it holds nothing but its own access, and the refusal names what
it still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import identity as identity_repo
from berth_api.adapters import members as members_repo
from berth_api.adapters import teams as repo
from berth_api.domain import tokens
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, name_taken
from berth_api.usecases import Deps
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, repr=False)
class TeamToken(tokens.ShownOnce):
    """A token minted for a team (its row, the team) and the plaintext, shown once."""

    team: dict[str, Any]
    plaintext: str


def team_missing(team_id: str) -> ProblemError:
    """The 404 for a team the caller does not belong to (one that exists nowhere is answered the same)."""
    return ProblemError(404, f"You are not a member of a team {team_id}.")


async def _membership(s: AsyncSession, principal: Principal, team_id: str) -> tuple[dict[str, str], str]:
    """The team (its row locked) and the caller's role there; 404 when the caller is not a member."""
    team = await repo.lock_team(s, team_id)
    role = None if team is None else await repo.role_in(s, team_id, principal.user_id)
    if team is None or role is None:
        raise team_missing(team_id)
    return team, role


def _expiry(expires_in_days: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None


async def create_team(
    deps: Deps, principal: Principal, name: str, token_name: str, expires_in_days: int | None
) -> TeamToken:
    """A new team with the caller as its only member and admin, and the caller's first token for it."""
    token = tokens.generate()
    try:
        async with deps.sessionmaker() as s, s.begin():
            if await repo.team_named(s, name) is not None:
                raise name_taken("team", name)
            team_id = await identity_repo.create_team(s, name)
            await identity_repo.add_member(s, principal.user_id, team_id, "admin")
            row = await identity_repo.insert_token(
                s, principal.user_id, team_id, token_name, token, _expiry(expires_in_days)
            )
    except IntegrityError:  # the same name created at the same moment
        raise name_taken("team", name) from None
    log.info("team created", team_id=team_id, user_id=principal.user_id, token_prefix=token.prefix)
    return TeamToken(row=row, team={"id": team_id, "name": name}, plaintext=token.plaintext)


async def mint_token(
    deps: Deps, principal: Principal, team_id: str, name: str, expires_in_days: int | None
) -> TeamToken:
    """A token for the caller in a team the caller belongs to (any role: the token acts with the role the
    caller has there at each request)."""
    token = tokens.generate()
    async with deps.sessionmaker() as s, s.begin():
        team, _ = await _membership(s, principal, team_id)
        row = await identity_repo.insert_token(s, principal.user_id, team_id, name, token, _expiry(expires_in_days))
    log.info("api token issued", id=row["id"], prefix=token.prefix, team_id=team_id)
    return TeamToken(row=row, team=team, plaintext=token.plaintext)


async def leave(deps: Deps, principal: Principal, team_id: str) -> None:
    """End the caller's membership of a team and revoke the caller's tokens of it (never the last admin)."""
    async with deps.sessionmaker() as s, s.begin():
        team, _ = await _membership(s, principal, team_id)
        admins = await members_repo.lock_admins(s, team_id)
        if admins == [principal.user_id]:
            raise ProblemError(
                409,
                f"You are the last admin of team {team['name']}; make another member admin first, "
                "or delete the team once it is empty.",
            )
        revoked = await members_repo.remove_member(s, team_id, principal.user_id, datetime.now(UTC))
    log.info("member left", team_id=team_id, user_id=principal.user_id, tokens_revoked=revoked)


def describe(held: dict[str, int]) -> str:
    """``2 projects, 1 servers``: what a team still holds, by table, in a sentence."""
    return ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in sorted(held.items()))


async def delete_team(deps: Deps, principal: Principal, team_id: str) -> None:
    """Delete a team the caller is an admin of, once it holds nothing and no one else (409 names what)."""
    async with deps.sessionmaker() as s, s.begin():
        team, role = await _membership(s, principal, team_id)
        if role != "admin":
            raise ProblemError(403, f"Deleting team {team['name']} needs the admin role there; you are {role}.")
        held = await repo.holdings(s, team_id)
        others = await repo.other_members(s, team_id, principal.user_id)
        if others:
            held["other members"] = others
        if held:
            raise ProblemError(409, f"Team {team['name']} still holds {describe(held)}; remove them first.")
        await repo.delete_team(s, team_id)
    log.info("team deleted", team_id=team_id, user_id=principal.user_id)
