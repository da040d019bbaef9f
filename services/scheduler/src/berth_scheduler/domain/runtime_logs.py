"""Runtime logs as data: the engine's query parameters, the merge of replicas by time, the reply's size
cap, and the rate a follower publishes at.

The engine applies ``tail`` before ``until`` (it reads the last lines, then drops those after ``until``), so
with an ``until`` the whole log up to it is read and the last lines are kept here; with ``since`` alone the
engine's ``tail`` is right (the lines are in time order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from berth_common.catalogue import ContainerLogLine, RuntimeLogLine

_OLDEST = datetime.min.replace(tzinfo=UTC)
L = TypeVar("L", RuntimeLogLine, ContainerLogLine)
LINE_OVERHEAD = 160  # JSON keys, service, replica, server and time of a line in a reply, about


def unix(moment: datetime, *, through: bool = False) -> str:
    """``moment`` as the engine's ``since``/``until``: seconds since the epoch with nanoseconds (a naive
    time is UTC). Times are shown to the microsecond, the engine keeps nanoseconds: ``through`` is the last
    nanosecond of the microsecond, so an ``until`` taken from a line's shown time includes that line."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    seconds = delta.days * 86400 + delta.seconds
    return f"{seconds}.{delta.microseconds * 1000 + (999 if through else 0):09d}"


def log_params(
    tail: int | None, since: datetime | None = None, until: datetime | None = None, *, follow: bool = False
) -> dict[str, str]:
    """The query of ``GET /containers/{name}/logs``: both streams with timestamps; ``tail`` None: every line
    (a follower asks ``follow`` with ``since``: what was written from then on, then what comes)."""
    params = {"stdout": "1", "stderr": "1", "timestamps": "1", "tail": "all" if tail is None else str(tail)}
    if until is not None:
        params["tail"] = "all"  # the engine's tail comes before its until (see above)
        params["until"] = unix(until, through=True)
    if since is not None:
        params["since"] = unix(since)
    if follow:
        params["follow"] = "1"
    return params


def merged(groups: Iterable[list[RuntimeLogLine]], tail: int) -> list[RuntimeLogLine]:
    """Every replica's lines in one list ordered by time (a line without a time first; equal times keep
    their replica's order), the last ``tail`` of them."""
    every = [line for group in groups for line in group]
    every.sort(key=lambda line: line.time or _OLDEST)  # stable: a replica's own order is kept
    return every[-tail:] if tail else []


def capped(lines: list[L], max_bytes: int) -> tuple[list[L], bool]:
    """The newest of ``lines`` that fit in ``max_bytes`` of reply, and whether older ones were left out."""
    total = 0
    for at in range(len(lines) - 1, -1, -1):
        total += len(lines[at].line.encode()) + len(getattr(lines[at], "replica", "")) + LINE_OVERHEAD
        if total > max_bytes:
            return lines[at + 1 :], True
    return lines, False


@dataclass
class RateLimit:
    """A token bucket: ``per_s`` lines a second on average, ``burst`` at once; what is refused is counted."""

    per_s: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0
    dropped: int = field(default=0)

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped
