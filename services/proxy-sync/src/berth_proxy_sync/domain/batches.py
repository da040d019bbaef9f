"""Route change batches: which waiting commands of one server go into its next batch (pure).

The changes of a batch are written together, confirmed by the same Traefik reload and recorded in one
transaction, so they must not depend on each other: a batch changes each route once and gives each host
to one route. Commands for one route that arrive within one window are coalesced by generation: the
newest is the route's change, and the older ones ride along with it; once it is live they are answered
as stale, exactly as they would be if they arrived after it (when it fails, they wait for the next batch,
as if they arrived after it). A second command of the same generation, and a command whose hosts another
route of the batch claims, waits for a later batch, in arrival order, so a host goes to the route that
asked first. Invalid commands are never written (they are answered as failed) and take part in every batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Pending(Protocol):
    @property
    def route_id(self) -> str: ...

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts the command claims (a removal claims none)."""

    @property
    def generation(self) -> int: ...

    @property
    def valid(self) -> bool: ...


P = TypeVar("P", bound=Pending)


@dataclass
class Batch(Generic[P]):
    """The next batch: ``changes`` (one per route, and the invalid commands), the older commands riding
    along with each route's change (``riders[route_id]``), and the commands left waiting (arrival order)."""

    changes: list[P] = field(default_factory=list)
    riders: dict[str, list[P]] = field(default_factory=dict)
    left: list[P] = field(default_factory=list)


def next_batch(waiting: Sequence[P], limit: int) -> Batch[P]:
    """The next batch from ``waiting`` (in arrival order), with at most ``limit`` route changes."""
    out: Batch[P] = Batch()
    heads: dict[str, P] = {}
    claimed: dict[str, str] = {}  # host -> route whose change in the batch claims it
    blocked_routes: set[str] = set()  # routes with a command left waiting: later ones wait too
    blocked_hosts: set[str] = set()  # hosts a command left waiting claims

    def free(item: P) -> bool:
        return all(claimed.get(h, item.route_id) == item.route_id and h not in blocked_hosts for h in item.hosts)

    def leave(item: P) -> None:
        out.left.append(item)
        blocked_routes.add(item.route_id)
        blocked_hosts.update(item.hosts)

    for item in waiting:
        rid = item.route_id
        if not item.valid:
            out.changes.append(item)
        elif rid in blocked_routes:
            leave(item)
        elif rid not in heads:
            if free(item) and len(heads) < limit:
                heads[rid] = item
                claimed.update(dict.fromkeys(item.hosts, rid))
            else:
                leave(item)
        elif item.generation < heads[rid].generation:
            out.riders.setdefault(rid, []).append(item)
        elif item.generation > heads[rid].generation and free(item):
            head = heads[rid]
            out.riders.setdefault(rid, []).append(head)
            for h in head.hosts:
                claimed.pop(h, None)
            heads[rid] = item
            claimed.update(dict.fromkeys(item.hosts, rid))
        else:
            leave(item)
    out.changes.extend(heads.values())
    return out


def lock_keys(route_id: str, hosts: Iterable[str] = (), server_id: str = "local") -> list[str]:
    """The advisory lock keys of a command: its route's (the route id on ``local``, ``<server>/<route>`` on
    another server), then each host it claims (sorted; a host is claimed on every server alike)."""
    route_key = route_id if server_id == "local" else f"{server_id}/{route_id}"
    return [f"berth-route:{route_key}", *(f"berth-host:{h}" for h in sorted(set(hosts)))]


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
