"""One deployment at a time per application: who runs next, and which queued ones a newcomer replaces.

Deployments run in the order their start commands reach the scheduler (``seq``), which is the api's request
order (``number``) unless the bus delivered them otherwise: a command redelivered after its consumer crashed
arrives after the ones sent behind it. A deployment that arrives after a newer one of its application
(``superseded``) does not run at all: run after it, it would replace the newer version with an older one,
and end as the application's live version although it is not the one last asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from berth_scheduler.domain.machine import State


@dataclass(frozen=True)
class QueueEntry:
    deployment_id: str
    state: State
    seq: int  # arrival order


def running(entries: Iterable[QueueEntry]) -> QueueEntry | None:
    """The application's deployment that holds the application (started, not finished)."""
    active = [e for e in entries if e.state not in (State.QUEUED, State.SUCCEEDED, State.FAILED, State.CANCELLED)]
    return min(active, key=lambda e: e.seq) if active else None


def next_to_admit(entries: Iterable[QueueEntry]) -> QueueEntry | None:
    """The oldest queued deployment, if nothing else of the application is running."""
    items = list(entries)
    if running(items) is not None:
        return None
    queued = [e for e in items if e.state == State.QUEUED]
    return min(queued, key=lambda e: e.seq) if queued else None


def replaced_by(newcomer: QueueEntry, entries: Iterable[QueueEntry]) -> list[QueueEntry]:
    """Deployments still queued before ``newcomer`` (``when_busy="replace_queued"`` cancels them)."""
    return sorted((e for e in entries if e.state == State.QUEUED and e.seq < newcomer.seq), key=lambda e: e.seq)


def position(entry: QueueEntry, entries: Iterable[QueueEntry]) -> int:
    """How many deployments of the application run or wait before this one (0: it is next)."""
    return sum(
        1 for e in entries if e.seq < entry.seq and e.state not in (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    )


def superseded(number: int | None, newest: int | None) -> str | None:
    """Why a deployment numbered ``number`` (the api's request order; None: not sent) is cancelled on arrival
    when ``newest`` is the highest number among the application's deployments already here; None: it runs."""
    if number is None or newest is None or newest <= number:
        return None
    return f"superseded: deployment #{newest} of this application was requested after it and arrived first"
