"""Persistence of what the scheduler last answered for each one-click database (``tables.database_runs``),
read by the revival pass (``usecases/database_revival.py``). The spec is kept as the bus carries it: JSON
with the password sealed, opened only at the point of use."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue import DatabaseChanged, DatabaseSpec
from berth_scheduler.adapters.tables import database_runs

RUNNING, STOPPED, FAILED = "running", "stopped", "failed"


async def remember(
    session: AsyncSession,
    database_id: str,
    team_id: str,
    request_id: str,
    state: str | None = None,
    spec: DatabaseSpec | None = None,
) -> None:
    """Record the request answered last for the database; ``state`` and ``spec`` when they changed (a
    database never answered ``running`` has no spec and is not started again)."""
    values: dict[str, Any] = {"request_id": request_id}
    if state is not None:
        values["state"] = state
    if spec is not None:
        values["spec"] = spec.model_dump_json()
        values["server_id"] = spec.server_id
    found = await session.execute(
        sa.update(database_runs)
        .where(database_runs.c.database_id == database_id)
        .values(**values)
        .returning(database_runs.c.database_id)
    )
    if found.first() is not None or state is None:
        return
    row = {"database_id": database_id, "team_id": team_id, "server_id": "local", "spec": None, **values}
    await session.execute(
        insert(database_runs)
        .values(**row)
        .on_conflict_do_update(index_elements=[database_runs.c.database_id], set_=values)
    )


async def forget(session: AsyncSession, database_id: str) -> None:
    await session.execute(sa.delete(database_runs).where(database_runs.c.database_id == database_id))


async def running(session: AsyncSession) -> list[Any]:
    """The databases meant to run (answered ``running`` last), by id."""
    stmt = (
        sa.select(database_runs)
        .where(database_runs.c.state == RUNNING, database_runs.c.spec.is_not(None))
        .order_by(database_runs.c.database_id)
    )
    return list((await session.execute(stmt)).all())


async def get(session: AsyncSession, database_id: str) -> Any | None:
    stmt = sa.select(database_runs).where(database_runs.c.database_id == database_id)
    return (await session.execute(stmt)).first()


def spec_of(row: Any) -> DatabaseSpec:
    """The spec the database last ran with (its password still sealed)."""
    return DatabaseSpec.model_validate_json(row.spec)


async def record(
    session: AsyncSession, answer: DatabaseChanged | None, spec: DatabaseSpec | None, ids: tuple[str, str, str]
) -> None:
    """Record an answer to a command (``ids``: database, team, request; ``answer`` None: no container change):
    ``running`` with the spec that runs, ``stopped`` or ``failed`` as they are, ``removed`` forgets it."""
    database_id, team_id, request_id = ids
    if answer is None or answer.state == "starting":
        await remember(session, database_id, team_id, request_id)
    elif answer.state == "removed":
        await forget(session, database_id)
    elif answer.state == RUNNING:
        await remember(session, database_id, team_id, request_id, RUNNING, spec)
    else:
        await remember(session, database_id, team_id, request_id, answer.state)
