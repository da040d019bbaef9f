"""Route change batches: which waiting commands of one server go into its next batch (pure).

The changes of a batch are written together, confirmed by the same Traefik reload and recorded in one
transaction, so they must not depend on each other: a batch changes each route once and gives each host
to one route. Commands for one route that arrive within one window are coalesced by generation: the
newest is the route's change, and the older ones ride along with it; once it is live they are answered
as stale, exactly as they would be if they arrived after it (when it fails, they wait for the next batch,
as if they arrived after it). A second command of the same generation, and a command whose hosts another
route of the batch claims, waits for a later batch, in arrival order, so a host goes to the route that
asked first. Invalid commands are never written (they are answered as failed) and take part in every batch.

Host locks (``host_lock_modes``). A host is owned by at most one route id across all servers; the same route
id may own it on several servers (one application service on many). A command takes an advisory lock on
every host it touches, in one of two modes:

- shared, when its route id owns the host before and after the command: a host it claims again (the route
  id has it on this or another server now), or one it gives up here while keeping it on another server.
  The same route changed on several servers at once holds these together, so it does not wait for itself.
- exclusive, when the route id's ownership begins (a new claim) or ends (the host given up on its last
  server: a removal, or an apply that drops the host).

Every claim is checked after its lock is held, against what is committed then (``claim_conflicts``), and a
claim made under a shared lock also needs its route id to still own the host then (``lost_shared_claims``);
when nobody owns it any more, the command waits for a later batch, which claims it exclusively. So while
anyone holds a host's lock shared, its owner is that route id or nobody: an exclusive lock cannot be taken
meanwhile, and a shared claim by another route id finds that it does not own the host. A host therefore
passes to a new route id only under an exclusive lock, whose check sees every claim committed before it.
The mode is chosen from what is stored before the locks are taken; a stale choice is caught by that check.

The races this covers:

- Route Y claims a host while route X removes it from its last server: the removal holds the host
  exclusively. Whichever locks first goes first; when it is Y, Y's check still finds X owning the host and
  the claim is refused (as when X kept it); when it is the removal, Y waits for a later batch and then
  finds the host free.
- Route X re-claims a host it owns on server A (shared) while X's removal on A commits: X's check on server
  B still finds the host owned by X (A's row if the removal had not committed, otherwise nobody: X waits
  and claims it exclusively). A claim by Y meanwhile cannot take the lock exclusively while X holds it
  shared, and cannot take it shared since Y does not own the host.
- A new claim by X on server A while Y claims the same host on server B: both are exclusive, so one of
  them waits for a later batch; its check then finds the other owning the host and refuses the claim.
- X claims the same new host on servers A and B at once: both exclusive, one waits for a later batch and
  then re-claims it shared (X owns it now).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar


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


LockMode = Literal["shared", "exclusive"]


def host_lock_modes(
    claims: Iterable[str], held: Mapping[str, Collection[str]], server_id: str = "local"
) -> dict[str, LockMode]:
    """The hosts a command of one route id on ``server_id`` locks, with the mode of each lock (sorted by
    host; see the module's docstring). ``claims``: the hosts the command gives its route (none for a
    removal); ``held``: the hosts its route id has now, each with the servers it has it on."""
    wanted = set(claims)
    owned = {h for h, servers in held.items() if servers}
    modes: dict[str, LockMode] = {h: "shared" if h in owned else "exclusive" for h in wanted}
    for host, servers in held.items():
        if host not in wanted and server_id in servers:  # given up here: kept on another server or freed
            modes[host] = "shared" if set(servers) - {server_id} else "exclusive"
    return dict(sorted(modes.items()))


def command_locks(route_id: str, modes: Mapping[str, LockMode], server_id: str = "local") -> list[tuple[str, bool]]:
    """The advisory locks of a command, in the order they are taken: ``(key, shared)``, its route's first
    (exclusive), then each host's in ``modes`` (``host_lock_modes``)."""
    route_key, *host_keys = lock_keys(route_id, modes, server_id)
    return [(route_key, False), *((k, modes[h] == "shared") for k, h in zip(host_keys, sorted(modes), strict=True))]


def lost_shared_claims(
    route_id: str, claims: Iterable[str], modes: Mapping[str, LockMode], owners: Mapping[str, str]
) -> list[str]:
    """Hosts among ``claims`` locked shared whose owner, once the lock is held (``owners``: host -> route),
    is nobody: the route id gave them up meanwhile, so the command claims them anew, exclusively, in a
    later batch. (A host another route owns now is a conflict: ``claim_conflicts``.)"""
    return sorted(h for h in set(claims) if modes.get(h) == "shared" and h not in owners)


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
