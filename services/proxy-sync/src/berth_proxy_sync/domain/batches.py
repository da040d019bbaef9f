"""Route change batches: which waiting commands of one site go into its next batch (pure).

The changes of a batch are written together, confirmed by the same Traefik reload and recorded in one
transaction, so they must not depend on each other: a batch changes each route at most once and gives each
host to at most one route. A command that would touch a route or a host already wanted by an earlier
command (taken into the batch or still waiting) waits for a later batch, in arrival order, so one route's
commands apply one after the other and a host goes to the route that asked first. Invalid commands are
never written (they are answered as failed) and take part in every batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar


class Pending(Protocol):
    @property
    def route_id(self) -> str: ...

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts the command claims (a removal claims none)."""

    @property
    def valid(self) -> bool: ...


P = TypeVar("P", bound=Pending)


def next_batch(waiting: Sequence[P], limit: int) -> tuple[list[P], list[P]]:
    """Split ``waiting`` (in arrival order) into the next batch (at most ``limit`` valid commands) and what
    keeps waiting (still in arrival order)."""
    taken: list[P] = []
    left: list[P] = []
    routes: set[str] = set()
    hosts: set[str] = set()
    valid = 0
    for item in waiting:
        if not item.valid:
            taken.append(item)
            continue
        free = item.route_id not in routes and hosts.isdisjoint(item.hosts)
        routes.add(item.route_id)
        hosts.update(item.hosts)
        if free and valid < limit:
            taken.append(item)
            valid += 1
        else:
            left.append(item)
    return taken, left


def lock_keys(route_id: str, hosts: Iterable[str] = ()) -> list[str]:
    """The advisory lock keys of a command: its route's, then each host it claims (sorted)."""
    return [f"berth-route:{route_id}", *(f"berth-host:{h}" for h in sorted(set(hosts)))]


def claim_conflicts(route_id: str, hosts: Iterable[str], owners: Mapping[str, str]) -> dict[str, str]:
    """Hosts among ``hosts`` that another route serves now (``owners``: host -> route): ``{host: route}``."""
    return {h: owners[h] for h in hosts if owners.get(h, route_id) != route_id}


def waits_for_batch(conflicts: Mapping[str, str], changing: set[str]) -> bool:
    """A claim of a host whose owner this batch changes waits for the batch's outcome (the owner may be
    giving it up) instead of failing now."""
    return any(owner in changing for owner in conflicts.values())


def stale_reason(generation: int, stored_generation: int | None) -> str | None:
    if stored_generation is not None and generation < stored_generation:
        return f"stale: generation {generation} is older than the route's {stored_generation}"
    return None
