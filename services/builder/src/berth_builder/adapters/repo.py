"""The builds table: claiming a build id, heartbeats, finishing, and the image cache by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_builder.adapters.tables import builds, cancels
from berth_common.records import record_of

Claim = Literal["claimed", "finished", "busy", "cancelled"]
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class BuildRow:
    build_id: str
    deployment_id: str
    application_id: str
    status: str
    image_tag: str
    commit: str | None
    image_id: str | None
    reused: bool
    generated_dockerfile: str | None
    stage: str | None
    reason: str | None
    duration_s: float | None
    attempts: int
    stale: bool
    server_id: str = "local"
    pushed_ref: str | None = None

    @classmethod
    def from_row(cls, row: Any, stale: bool = False) -> BuildRow:
        return record_of(cls, row, stale=stale)


class BuildRepo:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], stale_after_s: float = 60.0) -> None:
        self.sessionmaker = sessionmaker
        self.stale_after_s = stale_after_s

    async def claim(self, values: dict[str, Any]) -> tuple[Claim, BuildRow]:
        """Take ``values['build_id']`` for this worker unless it is finished or another worker's heartbeat
        is fresh. Returns what was found (``finished``/``busy``) or ``claimed`` with the updated row."""
        stale_expr = builds.c.heartbeat_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, self.stale_after_s)
        async with self.sessionmaker() as s, s.begin():
            await s.execute(insert(builds).values(status="retrying", **values).on_conflict_do_nothing())
            row = (
                await s.execute(
                    sa.select(builds, stale_expr.label("stale"))
                    .where(builds.c.build_id == values["build_id"])
                    .with_for_update()
                )
            ).one()
            if row.status in FINISHED:
                return "finished", BuildRow.from_row(row)
            if row.status == "running" and not row.stale:
                return "busy", BuildRow.from_row(row, stale=False)
            if await _cancel_reason(s, values["build_id"]) is not None:
                return "cancelled", BuildRow.from_row(row)  # cancelled before it started: it never does
            updated = (
                await s.execute(
                    sa.update(builds)
                    .where(builds.c.build_id == values["build_id"])
                    .values(status="running", attempts=builds.c.attempts + 1, heartbeat_at=sa.func.now())
                    .returning(*builds.c)
                )
            ).one()
            return "claimed", BuildRow.from_row(updated)

    async def get(self, build_id: str) -> BuildRow | None:
        stale_expr = builds.c.heartbeat_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, self.stale_after_s)
        async with self.sessionmaker() as s:
            row = (
                await s.execute(sa.select(builds, stale_expr.label("stale")).where(builds.c.build_id == build_id))
            ).first()
        return None if row is None else BuildRow.from_row(row, stale=bool(row.stale))

    async def heartbeat(self, build_id: str) -> None:
        async with self.sessionmaker() as s, s.begin():
            await s.execute(
                sa.update(builds)
                .where(builds.c.build_id == build_id, builds.c.status == "running")
                .values(heartbeat_at=sa.func.now())
            )

    async def release(self, build_id: str) -> None:
        """A transient failure: the next delivery may claim the build again at once."""
        async with self.sessionmaker() as s, s.begin():
            await s.execute(
                sa.update(builds)
                .where(builds.c.build_id == build_id, builds.c.status == "running")
                .values(status="retrying")
            )

    async def request_cancel(self, build_id: str, deployment_id: str, reason: str) -> BuildRow | None:
        """Record that ``build_id`` is to be stopped (kept for a start command still to come, or for the
        process running it); the build as it stands, if known."""
        async with self.sessionmaker() as s, s.begin():
            await s.execute(
                insert(cancels)
                .values(build_id=build_id, deployment_id=deployment_id, reason=reason)
                .on_conflict_do_nothing()
            )
        return await self.get(build_id)

    async def cancel_reason(self, build_id: str) -> str | None:
        async with self.sessionmaker() as s:
            return await _cancel_reason(s, build_id)

    async def set_commit(self, build_id: str, commit: str, cache_key: str) -> None:
        async with self.sessionmaker() as s, s.begin():
            await s.execute(
                sa.update(builds).where(builds.c.build_id == build_id).values(commit=commit, cache_key=cache_key)
            )

    async def reusable(self, cache_key: str, server_id: str) -> BuildRow | None:
        """The latest successful build with this cache key on this build server."""
        async with self.sessionmaker() as s:
            row = (
                await s.execute(
                    sa.select(builds)
                    .where(
                        builds.c.cache_key == cache_key,
                        builds.c.status == "succeeded",
                        builds.c.image_id.is_not(None),
                        builds.c.server_id == server_id,
                    )
                    .order_by(builds.c.finished_at.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else BuildRow.from_row(row)


async def record_result(session: AsyncSession, build_id: str, values: dict[str, Any]) -> None:
    """Inside the finishing unit of work (with the event in the outbox)."""
    await session.execute(
        sa.update(builds).where(builds.c.build_id == build_id).values(finished_at=sa.func.now(), **values)
    )


async def _cancel_reason(session: AsyncSession, build_id: str) -> str | None:
    reason = (await session.execute(sa.select(cancels.c.reason).where(cancels.c.build_id == build_id))).scalar()
    return None if reason is None else str(reason)
