"""Line charts of metrics as inline SVG, drawn on the server (no chart library, no script): the REST API's
series grouped by service or by server, counters turned into rates, values put in readable units."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6)}
RANGES |= {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
DEFAULT_RANGE = "1h"
COUNTERS = frozenset({"net_rx", "net_tx", "blk_read", "blk_write"})  # cumulative: charted per second
COLOURS = ("#0b5cad", "#b3261e", "#146c2e", "#7a4a00", "#6a1b9a", "#00696f", "#3f4a5a", "#a0306e")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 200, 64, 22, 10

Points = list[tuple[float, float | None]]  # (unix time, value)


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    lines: dict[str, Points]  # legend name -> points
    start: float
    end: float

    @property
    def empty(self) -> bool:
        return not any(v is not None for pts in self.lines.values() for _, v in pts)

    def latest(self) -> dict[str, float | None]:
        return {name: next((v for _, v in reversed(pts) if v is not None), None) for name, pts in self.lines.items()}


def span(choice: str | None, now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """The picked range (a known name, else the default) and its window ending now."""
    name = choice if choice in RANGES else DEFAULT_RANGE
    end = now or datetime.now(UTC)
    return name, end - RANGES[name], end


def timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _rate(points: Points) -> Points:
    """A counter's increase per second between neighbouring points (a reset, when it falls, is no point)."""
    out: Points = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        ok = v0 is not None and v1 is not None and t1 > t0 and v1 >= v0
        out.append((t1, (v1 - v0) / (t1 - t0) if ok else None))  # type: ignore[operator]
    return out


def grouped(series: list[dict[str, Any]], metric: str, by: str) -> dict[str, Points]:
    """The series of ``metric`` summed per group: ``service`` (its label) or ``server`` (its name)."""
    sums: dict[str, dict[float, float | None]] = {}
    for s in series:
        if s.get("metric") != metric:
            continue
        points: Points = [(timestamp(t), None if v is None else float(v)) for t, v in s.get("points") or []]
        if metric in COUNTERS:
            points = _rate(points)
        name = (s.get("labels") or {}).get("service") or s.get("name", "") if by == "service" else s.get("server", "")
        into = sums.setdefault(str(name) or "?", {})
        for t, v in points:
            have = into.get(t)
            into[t] = v if have is None else (have if v is None else have + v)
    return {name: sorted(pts.items()) for name, pts in sorted(sums.items())}


def readable(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit in ("bytes", "bytes/s"):
        for size, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}{'/s' if unit == 'bytes/s' else ''}"
        return f"{value:.0f} B{'/s' if unit == 'bytes/s' else ''}"
    return f"{value:.2f}"


def _clock(t: float, long: bool) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M" if long else "%H:%M")


def svg(chart: Chart, ident: str) -> Markup:
    """The chart as an ``<svg role="img">`` named by its title and latest values, with a legend."""
    values = [v for pts in chart.lines.values() for _, v in pts if v is not None]
    top = max(values, default=0.0) or 1.0
    if chart.unit == "percent":
        top = max(top, 1.0)
    width = chart.end - chart.start or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP

    def x(t: float) -> float:
        return LEFT + max(0.0, min(1.0, (t - chart.start) / width)) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    summary = "; ".join(f"{n} {readable(v, chart.unit)}" for n, v in chart.latest().items()) or "no data"
    parts = [
        f'<svg id="{escape(ident)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(ident)}-t" preserveAspectRatio="none">',
        f'<title id="{escape(ident)}-t">{escape(chart.title)}, latest: {escape(summary)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - 8}" y2="{TOP}" class="grid"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{escape(readable(top, chart.unit))}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    long = chart.end - chart.start > 86400
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 4}">{_clock(chart.start, long)}</text>')
    parts.append(f'<text x="{WIDTH - 8}" y="{HEIGHT - 4}" text-anchor="end">{_clock(chart.end, long)}</text>')
    for i, (name, pts) in enumerate(chart.lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        for run in _runs(pts):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            parts.append(f'<polyline points="{coords}" stroke="{colour}" data-line="{escape(name)}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{COLOURS[i % len(COLOURS)]}"></span>{escape(name)}: '
        f"{escape(readable(v, chart.unit))}</li>"
        for i, (name, v) in enumerate(chart.latest().items())
    )
    # every name and value in it is escaped above; the rest is this module's own markup
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')  # noqa: S704


def _runs(points: Points) -> list[list[tuple[float, float]]]:
    """The unbroken stretches of a line (a missing value breaks it); a lone point is drawn as a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for t, v in points:
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((t, v))
    return [r if len(r) > 1 else [r[0], (r[0][0], r[0][1])] for r in runs if r]
