"""The api's one-off runs (api_0022): what was asked, and the state the scheduler's run events report
(``evt.run.started`` / ``evt.run.finished``); on the metadata of ``tables.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row
from berth_api.adapters.tables import metadata

STATUS_CHECK = "status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')"
STATUS_CHECK_0024 = "status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'skipped')"
STATUS_CHECK_0022 = "status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out')"

# One row per run: the command (argv), the deployment and service it runs as, and what it came to. Deleted
# with its application.
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("deployment_id", sa.String(32), nullable=False),
    sa.Column("service", sa.String(32), nullable=False),
    sa.Column("command", sa.JSON, nullable=False),
    sa.Column("timeout_s", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("last_lines", sa.JSON, nullable=False),
    sa.Column("server_id", sa.String(64), nullable=True),
    sa.Column("container", sa.String(128), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # api_0024: ``cron`` for a cron job's firing (``job_id``: its job; the run stays when the job goes).
    sa.Column("kind", sa.String(8), nullable=False, server_default="run"),
    sa.Column("job_id", sa.String(32), nullable=True),
    sa.CheckConstraint(STATUS_CHECK, name="runs_status"),
    sa.Index("runs_application_created", "application_id", "created_at"),
    sa.Index("runs_job_created", "job_id", "created_at"),
)

UNFINISHED = ("queued", "running")


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    row = await first_row(session, sa.insert(runs).values(**values).returning(*runs.c))
    assert row is not None
    return row


async def get_run(session: AsyncSession, team_id: str, application_id: str, run_id: str) -> dict[str, Any] | None:
    q = sa.select(runs).where(runs.c.id == run_id, runs.c.team_id == team_id, runs.c.application_id == application_id)
    return await first_row(session, q)


async def list_runs(session: AsyncSession, team_id: str, application_id: str, limit: int) -> list[dict[str, Any]]:
    q = (
        sa.select(runs)
        .where(runs.c.team_id == team_id, runs.c.application_id == application_id)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    return await all_rows(session, q)


async def mark_started(session: AsyncSession, run_id: str, values: dict[str, Any]) -> None:
    """queued -> running (an event after the run finished changes nothing)."""
    await session.execute(sa.update(runs).where(runs.c.id == run_id, runs.c.status == "queued").values(**values))


async def mark_finished(
    session: AsyncSession, run_id: str, values: dict[str, Any], started_at: datetime | None
) -> None:
    """The outcome of a run not finished yet; ``started_at`` is kept when the start was recorded (its event
    may come second)."""
    stmt = sa.update(runs).where(runs.c.id == run_id, runs.c.status.in_(UNFINISHED))
    await session.execute(stmt.values(**values, started_at=sa.func.coalesce(runs.c.started_at, started_at)))
