"""Threshold rules with hysteresis: pure evaluation, one step per reading.

A rule raises when the value stays strictly above ``threshold`` for ``for_s`` seconds, and resolves only
when the value stays at or below ``threshold - margin`` for ``resolve_for_s`` seconds. Between the two
lines nothing changes: a value wandering around the threshold can raise at most once and never resolves
while it stays above the lower line. A missing reading (the target is gone) counts as below both lines,
so an alert on a removed container resolves and a pending one is dropped.

States: ``ok`` -> ``pending`` (above, waiting for ``for_s``) -> ``firing`` (raised) -> ``resolving``
(below the lower line, waiting for ``resolve_for_s``) -> ``ok`` (resolved). ``resolving`` goes back to
``firing`` without any event if the value climbs above the lower line again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Status = Literal["ok", "pending", "firing", "resolving"]
Metric = Literal["cpu_pct", "mem_pct", "disk_pct", "restarts"]
TargetKind = Literal["container", "app", "server"]
METRICS: tuple[Metric, ...] = ("cpu_pct", "mem_pct", "disk_pct", "restarts")
METRIC_TARGETS: dict[str, tuple[str, ...]] = {
    "cpu_pct": ("container", "app", "server"),
    "mem_pct": ("container", "app", "server"),
    "disk_pct": ("server",),
    "restarts": ("container", "app"),
}
UNITS = {"cpu_pct": "%", "mem_pct": "%", "disk_pct": "%", "restarts": " restarts"}


@dataclass(frozen=True)
class Thresholds:
    """The numbers of a rule that evaluation needs."""

    threshold: float
    margin: float  # > 0: the alert resolves at or below threshold - margin
    for_s: float  # seconds above the threshold before it raises
    resolve_for_s: float  # seconds at or below the lower line before it resolves

    @property
    def lower(self) -> float:
        return self.threshold - self.margin


@dataclass(frozen=True)
class AlertState:
    status: Status = "ok"
    since: datetime | None = None  # when the value went above the threshold (pending, firing, resolving)
    raised_at: datetime | None = None  # when the alert was raised (firing, resolving)
    below_since: datetime | None = None  # when the value went to or below the lower line (resolving)
    value: float | None = None  # the last reading
    peak: float | None = None  # the highest reading since it went above the threshold


@dataclass(frozen=True)
class Transition:
    kind: Literal["raised", "resolved"]
    at: datetime
    value: float | None  # the reading that completed the transition
    peak: float | None
    since: datetime  # when the value went above the threshold for this alert
    raised_at: datetime


def default_margin(metric: str, threshold: float, fraction: float) -> float:
    """A fraction of the threshold by default; a restart alert resolves when its window holds no restart."""
    if metric == "restarts":
        return max(threshold, 1.0)
    return max(abs(threshold) * fraction, 1e-6)


def _peak(state: AlertState, value: float | None) -> float | None:
    if value is None:
        return state.peak
    return value if state.peak is None else max(state.peak, value)


def step(
    rule: Thresholds, state: AlertState, value: float | None, now: datetime
) -> tuple[AlertState, Transition | None]:
    """Advance one alert by one reading taken at ``now``."""
    above = value is not None and value > rule.threshold
    below = value is None or value <= rule.lower
    if state.status == "ok":
        if not above:
            return AlertState("ok", value=value), None
        state = AlertState("pending", since=now, value=value, peak=value)
    elif state.status == "pending":
        if not above:
            return AlertState("ok", value=value), None
        state = replace(state, value=value, peak=_peak(state, value))
    elif state.status == "firing":
        state = replace(state, value=value, peak=_peak(state, value))
        if not below:
            return state, None
        state = replace(state, status="resolving", below_since=now)
    else:  # resolving
        state = replace(state, value=value, peak=_peak(state, value))
        if not below:
            return replace(state, status="firing", below_since=None), None

    assert state.since is not None
    if state.status == "pending":
        if (now - state.since).total_seconds() < rule.for_s:
            return state, None
        firing = replace(state, status="firing", raised_at=now)
        return firing, Transition("raised", now, value, firing.peak, since=state.since, raised_at=now)
    assert state.below_since is not None and state.raised_at is not None
    if (now - state.below_since).total_seconds() < rule.resolve_for_s:
        return state, None
    transition = Transition("resolved", now, value, state.peak, since=state.since, raised_at=state.raised_at)
    return AlertState("ok", value=value), transition
