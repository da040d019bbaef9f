"""What the scheduler knows of a server's reachability from the server watcher (the metrics service's
``evt.server.unreachable`` and ``evt.server.back``), and what a deployment does with it.

A server reported unreachable is known to be down from then until its outage ends (``back`` with the same
outage) or the server is removed. Meanwhile nothing contacts it: its executor is refused at once
(``adapters/fleet.py``) with the reason below, so a deployment leaving it skips its cleanup with the usual
note (``usecases/rollout/unreachable.py``) without waiting for the SSH timeout, and its route and container
records stay until it is back (the revival pass, ``domain/revival.py``, or the next deployment removes its
containers then) or removed. The control plane's own engine (``local``) is never skipped this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from berth_scheduler.domain.routing import LOCAL


@dataclass(frozen=True)
class Down:
    """A server known to be unreachable: the outage the watcher reported, since when, its last error."""

    server_id: str
    outage_id: str
    since: datetime
    error: str = ""


def after_unreachable(
    current: Down | None, server_id: str | None, outage_id: str, since: datetime, error: str = ""
) -> Down | None:
    """The server's record after ``evt.server.unreachable`` (``server_id`` None: the local server)."""
    if server_id is None or server_id == LOCAL:
        return current
    return Down(server_id, outage_id, since, error[:500])


def after_back(current: Down | None, outage_id: str) -> Down | None:
    """The record after ``evt.server.back``: that outage is over; another (later) one stays."""
    if current is None or current.outage_id == outage_id:
        return None
    return current


def refusal(down: Down | None) -> str | None:
    """Why the server is not contacted now (None: it may be)."""
    if down is None:
        return None
    return (
        f"server {down.server_id} is unreachable (reported by the server watcher since "
        f"{down.since:%Y-%m-%d %H:%M:%S} UTC): not contacted until it is back"
    )
