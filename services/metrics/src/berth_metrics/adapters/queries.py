"""Reading series back: which series a target names, and their values bucketed by a step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_metrics.adapters.tables import series
from berth_metrics.domain.series import COLUMNS, Resolution, SeriesKind

MAX_SERIES = 100
_TABLE: dict[Resolution, str] = {"raw": "samples", "1m": "rollup_1m", "1h": "rollup_1h"}


@dataclass(frozen=True)
class SeriesRow:
    id: int
    kind: SeriesKind
    key: str
    name: str
    server: str
    labels: dict[str, str]


async def find_series(session: AsyncSession, kind: str, target_id: str, team_id: str | None) -> list[SeriesRow]:
    """The series a target names: a container (name, id or id prefix of 12+), an app's containers, or a
    server and its mounts. With ``team_id`` containers must carry that team's label."""
    if kind == "server":
        where = sa.or_(
            sa.and_(series.c.kind == "server", series.c.key == target_id),
            sa.and_(series.c.kind == "mount", series.c.server == target_id),
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
    rows = await session.execute(
        sa.select(series).where(where).order_by(series.c.last_seen_at.desc(), series.c.id).limit(MAX_SERIES)
    )
    out = []
    for r in rows.mappings():
        labels = {k: r[k] for k in ("app", "service", "deployment", "team") if r[k]}
        out.append(SeriesRow(r["id"], r["kind"], r["key"], r["name"], r["server"], labels))
    return out


def bucket_sql(resolution: Resolution) -> str:
    """Aggregate every stored column per (series, bucket of :step seconds from :origin)."""
    weighted = resolution != "raw"
    parts = []
    for c in COLUMNS:
        if c.aggregate == "max":
            parts.append(f"max({c.name}) AS {c.name}")
        elif weighted:
            parts.append(f"sum({c.name} * n) / nullif(sum(n) FILTER (WHERE {c.name} IS NOT NULL), 0) AS {c.name}")
        else:
            parts.append(f"avg({c.name}) AS {c.name}")
    return (
        f"SELECT series_id, date_bin(make_interval(secs => :step), ts, :origin) AS bucket, {', '.join(parts)} "  # noqa: S608 - names from COLUMNS
        f"FROM {_TABLE[resolution]} WHERE series_id = ANY(:ids) AND ts >= :start AND ts < :end "
        "GROUP BY series_id, bucket ORDER BY series_id, bucket"
    )


async def buckets(
    session: AsyncSession, resolution: Resolution, ids: list[int], start: datetime, end: datetime, step_s: float
) -> dict[int, list[tuple[datetime, dict[str, Any]]]]:
    out: dict[int, list[tuple[datetime, dict[str, Any]]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await session.execute(
        sa.text(bucket_sql(resolution)), {"ids": ids, "start": start, "end": end, "step": step_s, "origin": start}
    )
    for row in rows.mappings():
        values = {c.name: (float(row[c.name]) if row[c.name] is not None else None) for c in COLUMNS}
        out[row["series_id"]].append((row["bucket"], values))
    return out
