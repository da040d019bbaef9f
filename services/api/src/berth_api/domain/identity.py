"""Who is calling: the principal behind a token, and the pure rules that decide whether a token is good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from berth_api.domain import tokens
from berth_api.domain.roles import Role, is_role
from berth_common.records import record_of


@dataclass(frozen=True)
class Principal:
    user_id: str
    user_email: str
    user_name: str
    team_id: str
    team_name: str
    role: Role
    token_id: str
    token_name: str


def system_principal(team_id: str, name: str) -> Principal:
    """Who Berth itself acts as for a team (a webhook's deployment, a preview): no user, a developer."""
    return Principal(
        user_id="",
        user_email="",
        user_name=name,
        team_id=team_id,
        team_name=team_id,
        role="developer",
        token_id="",
        token_name=name,
    )


@dataclass(frozen=True)
class TokenRecord:
    """One api_tokens row joined with its user, team and (if still a member) the membership role."""

    token_id: str
    token_name: str
    hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: str
    user_email: str
    user_name: str
    user_disabled: bool
    team_id: str
    team_name: str
    role: str | None


def principal_for(record: TokenRecord | None, secret: str, now: datetime) -> Principal | None:
    """The principal if the secret matches and the token is live; None for every kind of failure."""
    # Hash even when there is no record so a missing prefix costs the same as a wrong secret.
    matches = tokens.verify(secret, record.hash if record else "0" * 64)
    if record is None or not matches:
        return None
    if record.revoked_at is not None or (record.expires_at is not None and record.expires_at <= now):
        return None
    role = record.role
    if record.user_disabled or role is None or not is_role(role):
        return None
    return record_of(Principal, record, role=role)


def needs_touch(last_used_at: datetime | None, now: datetime, interval_s: float) -> bool:
    """Write last_used_at only when it is older than the interval (one UPDATE per token per minute)."""
    return last_used_at is None or now - last_used_at >= timedelta(seconds=interval_s)
