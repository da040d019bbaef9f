"""The built-in "database down" alert, as pure evaluation: no user makes a rule for it.

A one-click database is one container, ``berth-db-<database id>`` labelled ``berth.app`` (the database id)
and ``berth.team``, made with the restart policy ``unless-stopped``. Each collection gives every such
container one reading: down (1) when Docker is bringing it back after it stopped on its own
(``restarting``), when its health check fails (the scheduler gives every database's container one that
asks the engine whether it answers, so a hung engine turns ``unhealthy``), or when it restarted since the
previous collection (a crash loop caught while it briefly runs); up (0) otherwise. A container that is not
running is down when it stalled: it never started (``created``, e.g. its port was taken), Docker could not
start it again (the engine's error), or it is ``dead``. Any other database with no running container has
no reading: it was stopped or removed on purpose (a container that stops on its own is restarted by its
policy, and so listed as restarting), so a pending alert is dropped and a raised one resolves. A database
whose container was never made has no reading either: the command that failed to make it says so.

The hysteresis is the rules' (``domain.rules.step``): raised once the database has been down for
``down_after_s`` without an up reading in between, resolved at the first up reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth_common import labels as label
from berth_metrics.domain.readings import ContainerReading, Snapshot, StalledContainer, TargetValue
from berth_metrics.domain.rules import Thresholds

DATABASE_LABEL = f"{label.KIND}=database"  # on every database's container (and its proxy)
DATABASE_CONTAINER = re.compile(r"^berth-db-([0-9a-f]{32})$")
DOWN, UP = 1.0, 0.0
RULE_NAME = "database down"


def thresholds(down_after_s: float) -> Thresholds:
    """Above 0.5 (down) for ``down_after_s`` raises; at or below 0 (up) resolves at once."""
    return Thresholds(threshold=0.5, margin=0.5, for_s=down_after_s, resolve_for_s=0.0)


def database_of(reading: ContainerReading | StalledContainer) -> str | None:
    """The database id of a database's container (its name and its ``berth.app`` label agree), else None."""
    match = DATABASE_CONTAINER.match(reading.name)
    if match is None or reading.labels.get("app") != match.group(1) or not reading.labels.get("team"):
        return None
    return match.group(1)


def is_down(reading: ContainerReading, restarts_before: int | None) -> bool:
    restarted = restarts_before is not None and reading.restarts > restarts_before
    return reading.restarting or reading.health == "unhealthy" or restarted


@dataclass(frozen=True)
class DatabaseReading:
    database_id: str
    team_id: str
    container_id: str
    down: bool
    labels: dict[str, str]


def readings(snapshot: Snapshot, restarts: dict[str, int]) -> tuple[list[DatabaseReading], dict[str, int]]:
    """Every database container's reading in ``snapshot`` (``restarts``: each container's restart count at
    the previous collection), and the restart counts to remember for the next one."""
    found: list[DatabaseReading] = []
    counts: dict[str, int] = {}
    for reading in snapshot.containers.values():
        database_id = database_of(reading)
        if database_id is None:
            continue
        counts[reading.container_id] = reading.restarts
        down = is_down(reading, restarts.get(reading.container_id))
        labels = {"app": database_id, "container": reading.name, "kind": "database"}
        found.append(DatabaseReading(database_id, reading.labels["team"], reading.container_id, down, labels))
    for stalled in snapshot.stalled.values():
        database_id = database_of(stalled)
        if database_id is None:
            continue
        labels = {"app": database_id, "container": stalled.name, "kind": "database"}
        found.append(DatabaseReading(database_id, stalled.labels["team"], stalled.container_id, True, labels))
    return found, counts


def values(found: list[DatabaseReading], known: list[str]) -> list[TargetValue]:
    """One value per database read (1 down, 0 up), and None for each ``known`` one (a pending or raised
    alert) that has no reading any more."""
    seen = {r.database_id for r in found}
    out = [TargetValue(r.database_id, DOWN if r.down else UP, r.labels) for r in found]
    out += [TargetValue(database_id, None, {"app": database_id}) for database_id in known if database_id not in seen]
    return out
