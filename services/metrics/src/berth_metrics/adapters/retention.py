"""Rollups and retention: raw samples -> 1-minute -> 1-hour rollups, then old rows and series deleted.

Each rollup keeps a watermark (``rollup_state.done_until``): every bucket before it is computed. A run
recomputes buckets from the watermark up to the last complete one (an upsert, so a rerun is harmless); a
backfilled sample lowers the watermark (see the store). Raw rows are deleted only once rolled up and older
than their retention, minute rollups only once rolled into hours. A cap on raw rows per series and on the
number of series bounds the size whatever the clock or the interval does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_metrics.adapters.store import EPOCH
from berth_metrics.domain.series import COLUMNS

CHUNK = {"1m": timedelta(hours=6), "1h": timedelta(days=7)}
WIDTH = {"1m": "1 minute", "1h": "1 hour"}
SOURCE = {"1m": "samples", "1h": "rollup_1m"}
TARGET = {"1m": "rollup_1m", "1h": "rollup_1h"}


@dataclass(frozen=True)
class RetentionPolicy:
    raw: timedelta
    minute: timedelta
    hour: timedelta
    max_raw_rows_per_series: int
    max_series: int
    lag: timedelta = timedelta(seconds=15)


@dataclass
class RetentionReport:
    rolled_1m: int = 0
    rolled_1h: int = 0
    deleted_raw: int = 0
    deleted_1m: int = 0
    deleted_1h: int = 0
    capped_raw: int = 0
    deleted_series: int = 0


def rollup_sql(resolution: str) -> str:
    """The upsert that computes ``resolution`` buckets in [:lo, :hi) from the next finer table."""
    from_raw = resolution == "1m"
    select = ["count(*)" if from_raw else "sum(n)"]
    names = ["n"]
    for c in COLUMNS:
        if c.aggregate == "max":
            select.append(f"max({c.name})")
        elif from_raw:
            select.append(f"avg({c.name})")
        else:
            select.append(f"sum({c.name} * n) / nullif(sum(n) FILTER (WHERE {c.name} IS NOT NULL), 0)")
        names.append(c.name)
        if c.aggregate == "avg_max":
            select.append(f"max({c.name})" if from_raw else f"max({c.name}_max)")
            names.append(f"{c.name}_max")
    updates = ", ".join(f"{n} = excluded.{n}" for n in names)
    return (
        f"INSERT INTO {TARGET[resolution]} (series_id, ts, {', '.join(names)}) "  # noqa: S608 - names from COLUMNS
        f"SELECT series_id, date_bin(interval '{WIDTH[resolution]}', ts, :epoch) AS bucket, {', '.join(select)} "
        f"FROM {SOURCE[resolution]} WHERE ts >= :lo AND ts < :hi GROUP BY series_id, bucket "
        f"ON CONFLICT (series_id, ts) DO UPDATE SET {updates}"
    )


def _bin(t: datetime, resolution: str) -> datetime:
    width = 60 if resolution == "1m" else 3600
    seconds = int((t - EPOCH).total_seconds() // width * width)
    return EPOCH + timedelta(seconds=seconds)


async def _watermark(session: AsyncSession, resolution: str) -> datetime | None:
    await session.execute(
        sa.text("INSERT INTO rollup_state (resolution) VALUES (:r) ON CONFLICT DO NOTHING"), {"r": resolution}
    )
    row = await session.execute(
        sa.text("SELECT done_until FROM rollup_state WHERE resolution = :r FOR UPDATE"), {"r": resolution}
    )
    value: datetime | None = row.scalar_one()
    return value


async def rollup(sessionmaker: async_sessionmaker[AsyncSession], resolution: str, until: datetime) -> int:
    """Compute ``resolution`` buckets from the watermark up to ``until`` (exclusive, binned down)."""
    total = 0
    hi = _bin(until, resolution)
    while True:
        async with sessionmaker() as session, session.begin():
            done = await _watermark(session, resolution)
            if done is None:
                oldest = (await session.execute(sa.text(f"SELECT min(ts) FROM {SOURCE[resolution]}"))).scalar()  # noqa: S608 - fixed names
                if oldest is None:
                    return total
                done = _bin(oldest, resolution)
            if done >= hi:
                return total
            chunk_end = min(hi, done + CHUNK[resolution])
            result = await session.execute(
                sa.text(rollup_sql(resolution)), {"lo": done, "hi": chunk_end, "epoch": EPOCH}
            )
            total += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
            await session.execute(
                sa.text("UPDATE rollup_state SET done_until = :t WHERE resolution = :r"),
                {"t": chunk_end, "r": resolution},
            )
            if resolution == "1m":  # the hours these minutes fall in must be computed again
                await session.execute(
                    sa.text("UPDATE rollup_state SET done_until = :t WHERE resolution = '1h' AND done_until > :t"),
                    {"t": _bin(done, "1h")},
                )


async def _delete_before(session: AsyncSession, table: str, cut: datetime | None) -> int:
    if cut is None:
        return 0
    result = await session.execute(sa.text(f"DELETE FROM {table} WHERE ts < :cut"), {"cut": cut})  # noqa: S608 - fixed names
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def run_retention(
    sessionmaker: async_sessionmaker[AsyncSession], policy: RetentionPolicy, now: datetime
) -> RetentionReport:
    report = RetentionReport()
    report.rolled_1m = await rollup(sessionmaker, "1m", now - policy.lag)
    async with sessionmaker() as session:
        done_1m = (
            await session.execute(sa.text("SELECT done_until FROM rollup_state WHERE resolution = '1m'"))
        ).scalar()
    if done_1m is not None:
        report.rolled_1h = await rollup(sessionmaker, "1h", done_1m)
    async with sessionmaker() as session, session.begin():
        marks: dict[str, datetime | None] = dict(
            (await session.execute(sa.text("SELECT resolution, done_until FROM rollup_state"))).all()
        )

        def cut(keep: timedelta, rolled: datetime | None) -> datetime | None:
            return None if rolled is None else min(now - keep, rolled)

        report.deleted_raw = await _delete_before(session, "samples", cut(policy.raw, marks.get("1m")))
        report.deleted_1m = await _delete_before(session, "rollup_1m", cut(policy.minute, marks.get("1h")))
        report.deleted_1h = await _delete_before(session, "rollup_1h", now - policy.hour)
        capped = await session.execute(
            sa.text(
                "DELETE FROM samples s USING ("
                "  SELECT o.series_id, (SELECT x.ts FROM samples x WHERE x.series_id = o.series_id"
                "                       ORDER BY x.ts DESC OFFSET :cap LIMIT 1) AS cut"
                "  FROM (SELECT series_id FROM samples GROUP BY series_id HAVING count(*) > :cap) o"
                ") c WHERE s.series_id = c.series_id AND s.ts <= c.cut"
            ),
            {"cap": policy.max_raw_rows_per_series},
        )
        report.capped_raw = max(capped.rowcount or 0, 0)  # type: ignore[attr-defined]
        gone = await session.execute(
            sa.text(
                "DELETE FROM series WHERE last_seen_at < :old OR id IN ("
                "  SELECT id FROM series ORDER BY last_seen_at DESC OFFSET :max)"
            ),
            {"old": now - policy.hour, "max": policy.max_series},
        )
        report.deleted_series = max(gone.rowcount or 0, 0)  # type: ignore[attr-defined]
    return report
