"""Writing samples: one wide row per series and time, series registered on first sight and cached."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.logging import get_logger
from berth_metrics.adapters.tables import rollup_state, samples, series
from berth_metrics.domain.series import COLUMN_NAMES, SeriesKind

log = get_logger(__name__)
LAST_SEEN_EVERY_S = 60.0
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # bucket origin: minutes and hours in UTC, whatever the session zone


@dataclass(frozen=True)
class SeriesRef:
    key: str  # container id, server name (an added server: its id), server:mount
    kind: SeriesKind
    name: str
    server: str
    labels: tuple[tuple[str, str], ...] = ()  # app, service, deployment, team
    server_id: str = "local"  # the server the reading was taken on

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class SampleRow:
    series: SeriesRef
    ts: datetime
    values: dict[str, float | int | None]


@dataclass
class SampleStore:
    sessionmaker: async_sessionmaker[AsyncSession]
    _ids: dict[str, int] = field(default_factory=dict)
    _touched: dict[int, float] = field(default_factory=dict)

    async def _register(self, session: AsyncSession, refs: Sequence[SeriesRef]) -> None:
        rows = []
        for ref in {r.key: r for r in refs if r.key not in self._ids}.values():
            labels = ref.label_map
            rows.append(
                {
                    "kind": ref.kind,
                    "key": ref.key,
                    "name": ref.name[:300],
                    "server": ref.server,
                    "server_id": ref.server_id,
                    **{k: labels.get(k) for k in ("app", "service", "deployment", "team")},
                }
            )
        if not rows:
            return
        stmt = insert(series).values(rows)
        upsert = stmt.on_conflict_do_update(
            index_elements=[series.c.key], set_={"last_seen_at": sa.func.now(), "name": stmt.excluded.name}
        ).returning(series.c.id, series.c.key)
        now = time.monotonic()
        for sid, key in (await session.execute(upsert)).all():
            self._ids[key] = sid
            self._touched[sid] = now

    async def _touch(self, session: AsyncSession, ids: list[int]) -> None:
        now = time.monotonic()
        stale = [i for i in ids if now - self._touched.get(i, 0.0) >= LAST_SEEN_EVERY_S]
        if stale:
            await session.execute(sa.update(series).where(series.c.id.in_(stale)).values(last_seen_at=sa.func.now()))
            for i in stale:
                self._touched[i] = now

    async def write(self, rows: Sequence[SampleRow]) -> int:
        """Insert one batch of samples; a second sample of a series at the same time is ignored."""
        if not rows:
            return 0
        try:
            return await self._write(rows)
        except IntegrityError:  # a cached series was deleted by retention meanwhile: register again
            self._ids.clear()
            return await self._write(rows)

    async def _write(self, rows: Sequence[SampleRow]) -> int:
        async with self.sessionmaker() as session, session.begin():
            await self._register(session, [r.series for r in rows])
            values = [
                {"series_id": self._ids[r.series.key], "ts": r.ts, **{c: r.values.get(c) for c in COLUMN_NAMES}}
                for r in rows
            ]
            await session.execute(insert(samples).on_conflict_do_nothing(), values)
            await self._touch(session, [self._ids[r.series.key] for r in rows])
            # Samples older than what the minute rollup already covers (a backfill) make it redo from there.
            oldest = min(r.ts for r in rows)
            await session.execute(
                sa.update(rollup_state)
                .where(rollup_state.c.resolution == "1m", rollup_state.c.done_until > oldest)
                .values(done_until=sa.func.date_bin(sa.text("interval '1 minute'"), oldest, EPOCH))
            )
        return len(values)

    def forget(self) -> None:
        self._ids.clear()
        self._touched.clear()
