"""Reading where a team's applications are placed: their desired state, and the snapshots of their running
and live deployments (``domain.placements`` decides which name a server)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.deployments import live_of
from berth_api.adapters.rows import all_rows
from berth_api.adapters.tables import applications, deployments
from berth_api.domain.deployments import TERMINAL


async def placements_of(
    session: AsyncSession, team_id: str
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The team's applications (id, name, config) and, per application, the snapshots of its deployments
    that are still running and of its live one."""
    apps = await all_rows(
        session,
        sa.select(applications.c.id, applications.c.name, applications.c.config)
        .where(applications.c.team_id == team_id)
        .order_by(applications.c.name),
    )
    c = deployments.c
    running = await all_rows(
        session,
        sa.select(c.application_id, c.spec).where(c.team_id == team_id, c.state.not_in(sorted(TERMINAL))),
    )
    snapshots: dict[str, list[dict[str, Any]]] = {}
    for row in running:
        snapshots.setdefault(row["application_id"], []).append(row["spec"])
    for app_id, live in (await live_of(session, [a["id"] for a in apps])).items():
        snapshots.setdefault(app_id, []).append(live["spec"])
    return apps, snapshots
