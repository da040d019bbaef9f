"""Mint a new admin token on the control-plane host (``berth admin token``): the way back in when every
admin token was revoked or lost.

Whoever can read the platform's data directory (and so the database's credentials) can already do anything;
this gives them a token instead of SQL. The token belongs to an existing admin (the bootstrap admin's e-mail
by default) in one of that admin's teams; it is written to the admin token file (mode 0600) and recorded in
the team's audit log (action ``LOCAL berth admin token``, source ``local``) in the same transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters import admin_tokens as repo
from berth_api.adapters import audit
from berth_api.adapters import identity as identity_repo
from berth_api.domain import tokens
from berth_common.keyfile import write_private_file
from berth_common.logging import get_logger

log = get_logger(__name__)

TOKEN_NAME = "admin (berth admin token)"
AUDIT_METHOD = "LOCAL"
AUDIT_ROUTE = "berth admin token"


class NoAdminError(Exception):
    """No enabled admin with that e-mail (in that team)."""


@dataclass(frozen=True)
class Minted:
    token_id: str
    team_name: str
    plaintext: str


async def mint(
    sessionmaker: async_sessionmaker[AsyncSession], email: str, team: str | None, token_path: Path
) -> Minted:
    """A new token for the admin ``email`` (in ``team``, else the admin's oldest team), written to
    ``token_path`` and audited; the file is written before the commit (a failed write creates nothing)."""
    async with sessionmaker() as session, session.begin():
        member = await repo.admin_membership(session, email, team)
        if member is None:
            where = f" of team {team}" if team else ""
            raise NoAdminError(f"no enabled admin{where} has the e-mail {email}")
        token = tokens.generate()
        row = await identity_repo.insert_token(session, member["user_id"], member["team_id"], TOKEN_NAME, token, None)
        await audit.insert(
            session,
            {
                "team_id": member["team_id"],
                "user_id": member["user_id"],
                "token_id": row["id"],
                "method": AUDIT_METHOD,
                "route": AUDIT_ROUTE,
                "target_id": row["id"],
                "status": 201,
                "fields": None,
                "source": "local",
            },
        )
        await asyncio.to_thread(write_private_file, token_path, token.plaintext + "\n")
    log.info("admin token minted on the host", id=row["id"], prefix=token.prefix, team=member["team_name"])
    return Minted(token_id=row["id"], team_name=member["team_name"], plaintext=token.plaintext)
