"""The api's projection of a deployment's status from the scheduler's events: pure rules.

Events arrive at least once and, across event types (one consumer each), in any order. The rules:
a terminal deployment never changes state again; a progressed event never moves a deployment back to an
earlier state; within one state, an event older than the last one applied only is ignored. A terminal
event (succeeded, failed, cancelled) fills in what it carries even when a progressed event already
announced the end. A deployment that fails or is cancelled keeps the state it was in then (``ended_in``,
from the failure event's ``failed_in`` when it carries one): where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from berth_common.catalogue import DEPLOYMENT_STATES

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# queued .. stopping_old in order; every terminal state ranks last.
RANK = {state: min(i, 7) for i, state in enumerate(DEPLOYMENT_STATES)}
CANCELLABLE = frozenset({"queued", "building", "starting", "verifying", "routing"})
Status = Literal["queued", "in_progress", "succeeded", "failed", "cancelled"]


def status_of(state: str) -> Status:
    if state == "queued":
        return "queued"
    if state in TERMINAL:
        return state  # type: ignore[return-value]
    return "in_progress"


@dataclass(frozen=True)
class Projection:
    state: str
    step: str
    detail: str
    reason: str | None
    last_event_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    ended_in: str | None = None  # a failed or cancelled deployment: the state it was in when it ended

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def on_progressed(p: Projection, state: str, step: str, detail: str, at: datetime) -> Projection | None:
    """The projection after a progressed event, or None when the event is stale (no change)."""
    if p.terminal or state not in RANK:
        return None
    if RANK[state] < RANK[p.state]:
        return None
    if RANK[state] == RANK[p.state] and p.last_event_at is not None and at < p.last_event_at:
        return None
    started = p.started_at if p.started_at is not None or state == "queued" else at
    new = replace(p, state=state, step=step[:200], detail=detail, last_event_at=at, started_at=started)
    if state in TERMINAL:
        new = replace(new, finished_at=at, reason=p.reason or (detail if state != "succeeded" else None))
        new = replace(new, ended_in=None if state == "succeeded" else p.state)
    return new


def on_terminal(
    p: Projection, state: str, reason: str | None, at: datetime, failed_in: str | None = None
) -> Projection | None:
    """The projection after a succeeded/failed/cancelled event (``failed_in``: the state the scheduler says
    it failed in); None if another end was already recorded."""
    if p.terminal and p.state != state:
        return None
    ended_in = None
    if state != "succeeded":
        ended_in = failed_in or (p.ended_in if p.terminal else p.state)
    return replace(
        p,
        state=state,
        step=p.step if p.terminal else state,
        reason=reason if reason else p.reason,
        last_event_at=max(at, p.last_event_at) if p.last_event_at else at,
        finished_at=p.finished_at or at,
        ended_in=ended_in,
    )
