"""Identity: the first admin, API tokens and who presents them.

Routes call these; these call the adapters. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters import identity as repo
from berth_api.adapters.readpool import BatchedLookup, ReadPool
from berth_api.domain import tokens
from berth_api.domain.identity import Principal, needs_touch, principal_for
from berth_common.keyfile import write_private_file
from berth_common.logging import get_logger

log = get_logger(__name__)

DEFAULT_TEAM = "default"
BOOTSTRAP_TOKEN_NAME = "bootstrap"


@dataclass(frozen=True, repr=False)
class IssuedToken(tokens.ShownOnce):
    plaintext: str


async def bootstrap_admin(sessionmaker: async_sessionmaker[AsyncSession], email: str, token_path: Path) -> bool:
    """On the very first start, create the admin, the ``default`` team and a token written to ``token_path``.

    Serialised by an advisory lock, so concurrent first starts create one admin. The file is written
    before the transaction commits: if the write fails nothing is created; if the commit fails the next
    start writes a fresh token. Returns True when this call created the admin.
    """
    async with sessionmaker() as session, session.begin():
        await repo.lock_bootstrap(session)
        if await repo.any_user(session):
            return False
        user_id = await repo.create_user(session, email, "admin")
        team_id = await repo.create_team(session, DEFAULT_TEAM)
        await repo.add_member(session, user_id, team_id, "admin")
        token = tokens.generate()
        await repo.insert_token(session, user_id, team_id, BOOTSTRAP_TOKEN_NAME, token, None)
        await asyncio.to_thread(write_private_file, token_path, token.plaintext + "\n")
    log.info("bootstrap admin created", email=email, team=DEFAULT_TEAM, path=str(token_path))
    return True


@dataclass(frozen=True)
class Authenticated:
    """A verified token's principal, and its team's revision (what the application list is cached by)."""

    principal: Principal
    revision: int


async def authenticate(
    pool: ReadPool, lookup: BatchedLookup, presented: str, touch_interval_s: float
) -> Authenticated | None:
    """The principal behind a presented token, or None (malformed, unknown, wrong, expired, revoked).

    One statement (token, user, team, role, revision; shared with the requests waiting at the same time,
    sent after this one came), no cache: a revocation holds at the next request, in every api process.
    last_used_at is written at most once per ``touch_interval_s``.
    """
    parsed = tokens.parse(presented)
    if parsed is None:
        return None
    prefix, secret = parsed
    now = datetime.now(UTC)
    found = await repo.check_token(lookup, prefix)
    record, revision = found if found is not None else (None, 0)
    principal = principal_for(record, secret, now)
    if principal is None or record is None:
        return None
    if needs_touch(record.last_used_at, now, touch_interval_s):
        await repo.touch_token_now(pool, record.token_id, now)
    return Authenticated(principal, revision)


async def issue_token(
    sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, name: str, expires_in_days: int | None
) -> IssuedToken:
    """A new token for the caller in the caller's team; its plaintext exists only in the return value."""
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    token = tokens.generate()
    async with sessionmaker() as session, session.begin():
        row = await repo.insert_token(session, principal.user_id, principal.team_id, name, token, expires_at)
    log.info("api token issued", id=row["id"], prefix=token.prefix, team_id=principal.team_id)
    return IssuedToken(row=row, plaintext=token.plaintext)


async def list_tokens(sessionmaker: async_sessionmaker[AsyncSession], team_id: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        return await repo.list_tokens(session, team_id)


async def revoke_token(
    sessionmaker: async_sessionmaker[AsyncSession], team_id: str, token_id: str
) -> dict[str, Any] | None:
    """Revoke a token of the team; None when the team has no such token (another team's is "missing")."""
    async with sessionmaker() as session, session.begin():
        row = await repo.revoke_token(session, team_id, token_id, datetime.now(UTC))
    if row is not None:
        log.info("api token revoked", id=token_id, team_id=team_id)
    return row


async def revoke_own_token(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: str, token_id: str
) -> dict[str, Any] | None:
    """Revoke one of the user's own tokens in any team they belong to (any role may: a person may always
    give up a credential of theirs); None when they have no such token."""
    async with sessionmaker() as session, session.begin():
        row = await repo.revoke_own_token(session, user_id, token_id, datetime.now(UTC))
    if row is not None:
        log.info("api token revoked by its owner", id=token_id, team_id=row["team_id"])
    return row
