"""Database access for private repositories: an application's deploy key and token rows, and the SSH host
keys pinned for its git server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.git_tables import git_credentials, git_host_keys
from berth_api.adapters.rows import all_rows, first_row, one_row


async def credential(session: AsyncSession, team_id: str, application_id: str, kind: str) -> dict[str, Any] | None:
    c = git_credentials.c
    q = sa.select(git_credentials).where(c.team_id == team_id, c.application_id == application_id, c.kind == kind)
    return await first_row(session, q)


async def put_credential(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """Insert the row, or replace the sealed value (and what is shown) of the application's row of that kind."""
    changes = {k: values[k] for k in ("sealed", "public_key", "username", "rotated_at") if k in values}
    q = (
        insert(git_credentials)
        .values(**values)
        .on_conflict_do_update(constraint="git_credentials_one_per_kind", set_=changes)
        .returning(*git_credentials.c)
    )
    return await one_row(session, q)


async def delete_credential(session: AsyncSession, credential_id: str) -> None:
    await session.execute(sa.delete(git_credentials).where(git_credentials.c.id == credential_id))


async def host_keys(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    c = git_host_keys.c
    q = sa.select(git_host_keys).where(c.application_id == application_id).order_by(c.host, c.key_type)
    return await all_rows(session, q)


async def pin(session: AsyncSession, application_id: str, host: str, keys: Iterable[dict[str, Any]]) -> None:
    """The keys pinned for ``host`` are exactly ``keys`` (each: key_type, key, source, pinned_by); what the
    server offered instead is forgotten."""
    c = git_host_keys.c
    await session.execute(sa.delete(git_host_keys).where(c.application_id == application_id, c.host == host))
    rows = [{**k, "application_id": application_id, "host": host, "offered": False} for k in keys]
    if rows:
        await session.execute(sa.insert(git_host_keys).values(rows))


async def offer(session: AsyncSession, application_id: str, host: str, keys: Iterable[dict[str, Any]]) -> None:
    """Record the keys ``host`` presents instead of the pinned ones (replacing an earlier offer)."""
    c = git_host_keys.c
    mine = (c.application_id == application_id, c.host == host, c.offered.is_(True))
    await session.execute(sa.delete(git_host_keys).where(*mine))
    rows = [{**k, "application_id": application_id, "host": host, "offered": True} for k in keys]
    if rows:
        await session.execute(sa.insert(git_host_keys).values(rows))


async def unpin_all(session: AsyncSession, application_id: str) -> None:
    await session.execute(sa.delete(git_host_keys).where(git_host_keys.c.application_id == application_id))
