"""Reading series back: which series a target names, and their values bucketed by a step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_metrics.adapters.store import EPOCH
from berth_metrics.adapters.tables import series, server_health, servers
from berth_metrics.domain.series import COLUMN_NAMES, COLUMNS, Resolution, SeriesKind

MAX_SERIES = 100


@dataclass(frozen=True)
class SeriesRow:
    id: int
    kind: SeriesKind
    key: str
    name: str
    server: str
    labels: dict[str, str]
    server_id: str = "local"


def _on_server(server: str) -> sa.ColumnElement[bool]:
    """Series read on a server named by its id, or (the local server) by its name."""
    return sa.or_(series.c.server_id == server, sa.and_(series.c.server_id == "local", series.c.server == server))


async def server_visible(session: AsyncSession, server: str, team_id: str) -> bool:
    """Whether the team owns the added server ``server`` (its id) or has containers read on it."""
    owned = sa.select(servers.c.id).where(
        servers.c.id == server, servers.c.team_id == team_id, servers.c.state != "removed"
    )
    if (await session.execute(owned)).first() is not None:
        return True
    used = sa.select(series.c.id).where(series.c.kind == "container", series.c.team == team_id, _on_server(server))
    return (await session.execute(used.limit(1))).first() is not None


async def server_status(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """The stored reachability of a server (the local one by its name, an added one by its id); None while
    it never missed a collection."""
    row = (await session.execute(sa.select(server_health).where(server_health.c.server == key))).mappings().first()
    return None if row is None else dict(row)


async def find_series(
    session: AsyncSession, kind: str, target_id: str, team_id: str | None, server_id: str | None = None
) -> list[SeriesRow]:
    """The series a target names: a container (name, id or id prefix of 12+), an app's containers, or a
    server (its id; the local one: its name) and its mounts. With ``team_id`` containers must carry that
    team's label; with ``server_id`` only what was read on that server is found."""
    if kind == "server":
        where = sa.or_(
            sa.and_(series.c.kind == "server", series.c.key == target_id),
            sa.and_(series.c.kind == "mount", _on_server(target_id)),
        )
    else:
        if kind == "app":
            match = series.c.app == target_id
        else:
            match = sa.or_(series.c.key == target_id, series.c.name == target_id)
            if len(target_id) >= 12:
                match = sa.or_(match, series.c.key.startswith(target_id, autoescape=True))
        where = sa.and_(series.c.kind == "container", match)
        if team_id is not None:
            where = sa.and_(where, series.c.team == team_id)
    if server_id is not None:
        where = sa.and_(where, series.c.server_id == server_id)
    rows = await session.execute(
        sa.select(series).where(where).order_by(series.c.last_seen_at.desc(), series.c.id).limit(MAX_SERIES)
    )
    out = []
    for r in rows.mappings():
        labels = {k: r[k] for k in ("app", "service", "deployment", "team") if r[k]}
        out.append(SeriesRow(r["id"], r["kind"], r["key"], r["name"], r["server"], labels, r["server_id"]))
    return out


def _segment(table: str, lo: str | None, hi: str | None) -> str:
    """The rows of one table inside the range (and inside [lo, hi) when given), as (series, ts, n, columns)."""
    n = "1" if table == "samples" else "n"
    bounds = (f" AND ts >= :{lo}" if lo else "") + (f" AND ts < :{hi}" if hi else "")
    return (
        f"SELECT series_id, ts, {n} AS n, {', '.join(COLUMN_NAMES)} FROM {table} "  # noqa: S608 - fixed names
        f"WHERE series_id = ANY(:ids) AND ts >= :start AND ts < :end{bounds}"
    )


# Where each resolution reads from. A rollup is complete only up to its watermark (``rollup_state``): what
# lies after it (the current hour, the last minutes) is read from the next finer data, so a coarse step
# over a recent range still has its recent buckets. ``hour``/``minute`` are the watermarks (hour <= minute).
SEGMENTS: dict[Resolution, tuple[tuple[str, str | None, str | None], ...]] = {
    "raw": (("samples", None, None),),
    "1m": (("rollup_1m", None, "minute"), ("samples", "minute", None)),
    "1h": (("rollup_1h", None, "hour"), ("rollup_1m", "hour", "minute"), ("samples", "minute", None)),
}


def bucket_sql(resolution: Resolution) -> str:
    """Aggregate every stored column per (series, bucket of :step seconds from :origin), weighting rollup
    rows by their sample count, over the segments the resolution reads."""
    parts = []
    for c in COLUMNS:
        if c.aggregate == "max":
            parts.append(f"max({c.name}) AS {c.name}")
        else:
            parts.append(f"sum({c.name} * n) / nullif(sum(n) FILTER (WHERE {c.name} IS NOT NULL), 0) AS {c.name}")
    source = " UNION ALL ".join(_segment(*segment) for segment in SEGMENTS[resolution])
    return (
        f"SELECT series_id, date_bin(make_interval(secs => :step), ts, :origin) AS bucket, {', '.join(parts)} "  # noqa: S608 - names from COLUMNS
        f"FROM ({source}) AS src GROUP BY series_id, bucket ORDER BY series_id, bucket"
    )


async def watermarks(session: AsyncSession) -> tuple[datetime, datetime]:
    """(hour, minute): every 1-hour bucket before ``hour`` and every minute before ``minute`` is rolled up."""
    result = await session.execute(sa.text("SELECT resolution, done_until FROM rollup_state"))
    rows: dict[str, datetime | None] = {r[0]: r[1] for r in result.all()}
    minute = rows.get("1m") or EPOCH
    return min(rows.get("1h") or EPOCH, minute), minute


async def buckets(
    session: AsyncSession, resolution: Resolution, ids: list[int], start: datetime, end: datetime, step_s: float
) -> dict[int, list[tuple[datetime, dict[str, Any]]]]:
    out: dict[int, list[tuple[datetime, dict[str, Any]]]] = {i: [] for i in ids}
    if not ids:
        return out
    hour, minute = await watermarks(session) if resolution != "raw" else (EPOCH, EPOCH)
    params = {"ids": ids, "start": start, "end": end, "step": step_s, "origin": start, "hour": hour, "minute": minute}
    rows = await session.execute(sa.text(bucket_sql(resolution)), params)
    for row in rows.mappings():
        values = {c.name: (float(row[c.name]) if row[c.name] is not None else None) for c in COLUMNS}
        out[row["series_id"]].append((row["bucket"], values))
    return out
