"""Persistence of one-off runs (``usecases/runs.py``): one row per run; every change of its state is a
conditional update, so a repeated step (after a restart, or by a second instance) changes nothing twice."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import runs

UNFINISHED = ("queued", "running")


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Record a new run; False when its id was known already."""
    stmt = insert(runs).values(**values).on_conflict_do_nothing(index_elements=[runs.c.id]).returning(runs.c.id)
    return (await session.execute(stmt)).first() is not None


async def get(session: AsyncSession, run_id: str) -> Any | None:
    return (await session.execute(sa.select(runs).where(runs.c.id == run_id))).first()


async def unfinished(session: AsyncSession) -> list[str]:
    """The ids of the runs not finished yet, oldest first."""
    stmt = sa.select(runs.c.id).where(runs.c.status.in_(UNFINISHED)).order_by(runs.c.seq)
    return [str(i) for i in (await session.execute(stmt)).scalars()]


async def mark_running(session: AsyncSession, run_id: str, server_id: str, at: float) -> bool:
    """queued -> running; False when it was not queued (already marked)."""
    stmt = (
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status == "queued")
        .values(status="running", server_id=server_id, started_at=at)
        .returning(runs.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def set_server(session: AsyncSession, run_id: str, server_id: str) -> None:
    await session.execute(sa.update(runs).where(runs.c.id == run_id).values(server_id=server_id))


async def finish(session: AsyncSession, run_id: str, values: dict[str, Any]) -> Any | None:
    """Record the outcome of a run not finished yet; its row as it is now, or None when it had finished."""
    stmt = sa.update(runs).where(runs.c.id == run_id, runs.c.status.in_(UNFINISHED)).values(**values).returning(*runs.c)
    return (await session.execute(stmt)).first()


async def kept_finished(session: AsyncSession, application_id: str) -> list[Any]:
    """The application's finished runs whose container is still kept, newest first."""
    stmt = (
        sa.select(runs.c.id, runs.c.container, runs.c.server_id)
        .where(runs.c.application_id == application_id)
        .where(runs.c.status.not_in(UNFINISHED), sa.not_(runs.c.pruned))
        .order_by(runs.c.finished_at.desc(), runs.c.seq.desc())
    )
    return list(await session.execute(stmt))


async def mark_pruned(session: AsyncSession, run_id: str) -> None:
    await session.execute(sa.update(runs).where(runs.c.id == run_id).values(pruned=True))


async def unfinished_of_job(session: AsyncSession, job_id: str) -> list[str]:
    """The ids of the cron job's runs not finished yet, oldest first (locked: two firings of one job at
    once decide one after the other)."""
    stmt = (
        sa.select(runs.c.id)
        .where(runs.c.job_id == job_id, runs.c.status.in_(UNFINISHED))
        .order_by(runs.c.seq)
        .with_for_update()
    )
    return [str(i) for i in (await session.execute(stmt)).scalars()]


async def ask_stop(session: AsyncSession, run_ids: list[str] | tuple[str, ...], reason: str) -> None:
    """Ask the runner to stop these runs (those not finished, and not asked already), saying why."""
    stmt = sa.update(runs).where(
        runs.c.id.in_(list(run_ids)), runs.c.status.in_(UNFINISHED), runs.c.stop_reason.is_(None)
    )
    await session.execute(stmt.values(stop_reason=reason))


async def stop_reason(session: AsyncSession, run_id: str) -> str | None:
    """Why the run is to be stopped (None: it is not)."""
    value = (await session.execute(sa.select(runs.c.stop_reason).where(runs.c.id == run_id))).scalar()
    return str(value) if value else None
