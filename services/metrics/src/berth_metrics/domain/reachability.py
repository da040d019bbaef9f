"""Whether a server's Docker engine answers, one collection at a time (pure).

A server is ``up`` until its engine fails ``down_after`` collections in a row; then it is ``down`` and one
"unreachable" transition is returned. It is ``up`` again after ``up_after`` answered collections in a row,
with one "back" transition. Failures below the count, or answers while up, change nothing anyone hears
of: a single lost collection never notifies, and an outage is announced once and its end once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Status = Literal["up", "down"]


@dataclass(frozen=True)
class Limits:
    down_after: int = 3  # failed collections in a row before the server is reported unreachable
    up_after: int = 1  # answered collections in a row before it is reported back


@dataclass(frozen=True)
class ServerHealth:
    status: Status = "up"
    failures: int = 0  # failed collections in a row
    successes: int = 0  # answered collections in a row (counted while down)
    failing_since: datetime | None = None  # the first failed collection of the current streak
    last_seen_at: datetime | None = None  # the last answered collection
    outage_id: str | None = None  # set while down: pairs the two events of one outage
    team_ids: tuple[str, ...] = ()  # teams told about the outage (the back goes to the same)
    error: str = ""


@dataclass(frozen=True)
class Transition:
    kind: Literal["unreachable", "back"]
    health: ServerHealth  # the state it leads to
    down_since: datetime
    at: datetime
    outage_id: str
    team_ids: tuple[str, ...]
    failed_checks: int
    last_seen_at: datetime | None
    error: str = ""


def outage_id(server: str, since: datetime) -> str:
    return hashlib.sha256(f"{server}|{since.isoformat()}".encode()).hexdigest()[:32]


def observe(
    server: str,
    health: ServerHealth,
    answered: bool,
    now: datetime,
    limits: Limits,
    teams: tuple[str, ...] = (),
    error: str = "",
) -> tuple[ServerHealth, Transition | None]:
    """One collection's outcome: the new state, and the transition to announce if there is one."""
    if answered:
        if health.status == "up":
            return ServerHealth(last_seen_at=now), None
        successes = health.successes + 1
        if successes < limits.up_after:
            return replace(health, successes=successes, last_seen_at=now), None
        since = health.failing_since or now
        back = Transition(
            kind="back",
            health=ServerHealth(last_seen_at=now),
            down_since=since,
            at=now,
            outage_id=health.outage_id or outage_id(server, since),
            team_ids=health.team_ids,
            failed_checks=health.failures,
            last_seen_at=health.last_seen_at,
        )
        return back.health, back
    failures = health.failures + 1
    since = health.failing_since or now
    if health.status == "down":  # still down: count on, announce nothing
        return replace(health, failures=failures, successes=0, error=error or health.error), None
    if failures < limits.down_after:
        return replace(health, failures=failures, failing_since=since, error=error), None
    oid = outage_id(server, since)
    down = ServerHealth(
        status="down",
        failures=failures,
        failing_since=since,
        last_seen_at=health.last_seen_at,
        outage_id=oid,
        team_ids=tuple(sorted(set(teams))),
        error=error,
    )
    return down, Transition(
        kind="unreachable",
        health=down,
        down_since=since,
        at=now,
        outage_id=oid,
        team_ids=down.team_ids,
        failed_checks=failures,
        last_seen_at=health.last_seen_at,
        error=error,
    )
