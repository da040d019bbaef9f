"""What is stored per sample, how it is rolled up, and which resolution answers a query. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Resolution = Literal["raw", "1m", "1h"]
SeriesKind = Literal["container", "server", "mount"]
Aggregate = Literal["avg", "avg_max", "max"]


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: Literal["real", "bigint", "integer", "smallint"]
    aggregate: Aggregate  # avg: the mean; avg_max: the mean and a ``<name>_max`` column; max: the largest
    kinds: tuple[SeriesKind, ...]


# One wide row per (series, time). Counters (network, block I/O, restarts) roll up to their largest value,
# gauges to their mean (weighted by sample count from the minute rollups on), health to its worst.
COLUMNS: tuple[Column, ...] = (
    Column("cpu_pct", "real", "avg_max", ("container", "server")),
    Column("mem_used", "bigint", "avg_max", ("container", "server")),
    Column("mem_limit", "bigint", "max", ("container", "server")),
    Column("net_rx", "bigint", "max", ("container",)),
    Column("net_tx", "bigint", "max", ("container",)),
    Column("blk_read", "bigint", "max", ("container",)),
    Column("blk_write", "bigint", "max", ("container",)),
    Column("restarts", "integer", "max", ("container",)),
    Column("health", "smallint", "max", ("container",)),
    Column("load1", "real", "avg", ("server",)),
    Column("load5", "real", "avg", ("server",)),
    Column("load15", "real", "avg", ("server",)),
    Column("disk_used", "bigint", "avg", ("mount",)),
    Column("disk_total", "bigint", "max", ("mount",)),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
# Metrics a query can ask for: the stored columns plus percentages derived from two of them.
DERIVED = {"mem_pct": ("mem_used", "mem_limit"), "disk_pct": ("disk_used", "disk_total")}
METRICS_BY_KIND: dict[SeriesKind, tuple[str, ...]] = {
    "container": (*(c.name for c in COLUMNS if "container" in c.kinds), "mem_pct"),
    "server": (*(c.name for c in COLUMNS if "server" in c.kinds), "mem_pct"),
    "mount": ("disk_used", "disk_total", "disk_pct"),
}
ALL_METRICS = tuple(sorted({m for ms in METRICS_BY_KIND.values() for m in ms}))
WIDTH_S: dict[Resolution, float] = {"raw": 0.0, "1m": 60.0, "1h": 3600.0}


@dataclass(frozen=True)
class Retention:
    raw: timedelta
    minute: timedelta
    hour: timedelta

    def of(self, resolution: Resolution) -> timedelta:
        return {"raw": self.raw, "1m": self.minute, "1h": self.hour}[resolution]


def pick_resolution(
    start: datetime, step_s: float, now: datetime, retention: Retention, interval_s: float
) -> tuple[Resolution, float]:
    """The coarsest stored resolution no coarser than ``step`` that still reaches back to ``start``;
    failing that the finest one that does (and the step widened to it); failing that the hour rollups.
    Returns the resolution and the effective step in seconds."""
    order: tuple[Resolution, ...] = ("raw", "1m", "1h")
    width = {"raw": interval_s, "1m": 60.0, "1h": 3600.0}
    covering = [r for r in order if start >= now - retention.of(r)]
    fitting = [r for r in covering if width[r] <= step_s]
    chosen: Resolution = fitting[-1] if fitting else (covering[0] if covering else "1h")
    return chosen, max(step_s, width[chosen])


def derive(metric: str, row: dict[str, float | None]) -> float | None:
    """The value of one metric in one aggregated bucket (percentages from their two parts)."""
    if metric in DERIVED:
        used, total = (row.get(part) for part in DERIVED[metric])
        return used / total * 100.0 if used is not None and total else None
    return row.get(metric)


def metrics_for(kind: SeriesKind, wanted: list[str] | None) -> list[str]:
    """The requested metrics a series of this kind has (all of them when none are requested)."""
    available = METRICS_BY_KIND[kind]
    return list(available) if not wanted else [m for m in wanted if m in available]
