"""The autoscaling policy of a web service, as a pure decision over its replicas' recent readings.

Each collection gives one observation per autoscaled service: how many replicas of its live version run
and their average CPU (100 = one core) or memory use (percent of the limit). A decision is made only
when the last ``window_s`` seconds of observations all lie on one side of the hysteresis band around
the target (above ``target * (1 + band)``: up; below ``target * (1 - band)``: down), the replica count
did not change in that window, and the last change is ``cooldown_s`` old. The new count is the one that
brings the average to the target (``ceil(replicas * average / target)``), at most ``max_step`` replicas
away and within ``min`` and ``max``. A service outside ``min``..``max`` is brought back at its first
observation past the cooldown (a scale that keeps failing is asked again only once per cooldown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Metric = Literal["cpu", "memory"]
BAND = 0.1  # the hysteresis band: 10% of the target on each side
WINDOW_S = 60.0  # how long a reading must stay outside the band
MAX_STEP = 4  # replicas added or removed by one decision at most


@dataclass(frozen=True)
class Policy:
    min: int
    max: int
    metric: Metric
    target: float  # percent
    cooldown_s: float
    band: float = BAND
    window_s: float = WINDOW_S
    max_step: int = MAX_STEP


@dataclass(frozen=True)
class Observation:
    at: float  # epoch seconds
    replicas: int
    value: float | None  # the replicas' average, None when no replica gave a reading


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


def _pct(value: float) -> str:
    return f"{value:.0f}%"


def _window(history: Sequence[Observation], now: float, window_s: float) -> list[Observation] | None:
    """The observations of the last ``window_s`` seconds, if the history covers the whole window."""
    if not history or history[0].at > now - window_s:
        return None
    return [o for o in history if o.at >= now - window_s]


def decide(policy: Policy, history: Sequence[Observation], now: float, last_change_at: float | None) -> Decision | None:
    """The replicas the service should run, and why; None: leave it as it is. ``history`` is oldest first
    and ends with the current observation."""
    if not history:
        return None
    current = history[-1]
    n = current.replicas
    if last_change_at is not None and now - last_change_at < policy.cooldown_s:
        return None
    if n < policy.min:
        return Decision(policy.min, f"{n} replica(s) < min {policy.min}")
    if n > policy.max:
        return Decision(policy.max, f"{n} replica(s) > max {policy.max}")
    seen = _window(history, now, policy.window_s)
    if seen is None or any(o.value is None or o.replicas != n for o in seen):
        return None
    values = [o.value for o in seen if o.value is not None]
    upper, lower = policy.target * (1 + policy.band), policy.target * (1 - policy.band)
    average = sum(values) / len(values)
    window = f"{policy.window_s:g}s"
    if all(v > upper for v in values):
        want = min(policy.max, n + policy.max_step, max(n + 1, math.ceil(n * average / policy.target)))
        if want == n:
            return None
        sign = ">"
    elif all(v < lower for v in values):
        want = max(policy.min, n - policy.max_step, min(n - 1, math.ceil(n * average / policy.target)))
        if want == n:
            return None
        sign = "<"
    else:
        return None
    what = f"{policy.metric} {_pct(average)} {sign} {_pct(policy.target)} target for {window}"
    return Decision(want, f"{what}: {n} -> {want} replicas")
