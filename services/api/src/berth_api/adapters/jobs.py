"""The api's cron jobs (api_0024): one row per job of an application, and the runs its firings make (the
``runs`` table of one-off runs, ``kind`` ``cron`` with the job's id); on the metadata of ``tables.py``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row
from berth_api.adapters.runs import runs
from berth_api.adapters.tables import metadata

# A job: when (a cron expression in an IANA time zone), what (argv, the service it runs as, its timeout),
# its concurrency policy, and whether it is enabled. ``revision`` is the one its schedule was last sent
# with. Deleted with its application.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("cron", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("command", sa.JSON, nullable=False),
    sa.Column("service", sa.String(32), nullable=True),
    sa.Column("timeout_s", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.String(8), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("application_id", "name", name="jobs_application_name"),
    sa.CheckConstraint("concurrency IN ('forbid', 'replace', 'allow')", name="jobs_concurrency"),
)


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any] | None:
    """Record a new job; None when the application has a job of that name already."""
    stmt = insert(jobs).values(**values).on_conflict_do_nothing(constraint="jobs_application_name")
    return await first_row(session, stmt.returning(*jobs.c))


async def get_job(
    session: AsyncSession, team_id: str, application_id: str | None, job_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    q = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.team_id == team_id)
    if application_id is not None:
        q = q.where(jobs.c.application_id == application_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def list_jobs(session: AsyncSession, team_id: str, application_id: str) -> list[dict[str, Any]]:
    q = sa.select(jobs).where(jobs.c.team_id == team_id, jobs.c.application_id == application_id)
    return await all_rows(session, q.order_by(jobs.c.name))


async def update_job(session: AsyncSession, job_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
    """Change the job; None when its new name is another job's of the application."""
    try:
        async with session.begin_nested():
            stmt = sa.update(jobs).where(jobs.c.id == job_id).values(**values, updated_at=sa.func.now())
            return await first_row(session, stmt.returning(*jobs.c))
    except sa.exc.IntegrityError:
        return None


async def delete_job(session: AsyncSession, job_id: str) -> None:
    await session.execute(sa.delete(jobs).where(jobs.c.id == job_id))


async def jobs_of(session: AsyncSession, team_id: str, application_id: str) -> list[dict[str, Any]]:
    return await list_jobs(session, team_id, application_id)


async def insert_job_run(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any] | None:
    """Record a firing's run; None when it was recorded already (the firing delivered again)."""
    stmt = insert(runs).values(**values).on_conflict_do_nothing(index_elements=[runs.c.id])
    return await first_row(session, stmt.returning(*runs.c))


async def runs_of_job(session: AsyncSession, team_id: str, job_id: str, limit: int) -> list[dict[str, Any]]:
    q = (
        sa.select(runs)
        .where(runs.c.team_id == team_id, runs.c.job_id == job_id)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    return await all_rows(session, q)
