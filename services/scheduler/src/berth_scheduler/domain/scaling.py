"""Scaling the live version of an application: which replicas to add or remove, the routes after, the events.

A scale is persisted phase by phase (``pending``, ``starting``, ``routing``, ``draining``, ``stopping``,
then ``done`` or ``failed``), so a restart resumes it. New replicas take the lowest free replica numbers of
their service; removed ones are the highest numbered. A service that names servers keeps the placement
rule of its deployments (``domain/placement.py``): replica ``n`` runs on the servers in turn, and every
named server keeps at least one replica (a smaller target is raised to one per server). Routes change
once: on every server a touched web service runs on, its route (a route is (server, route id)) gets the
confirmed upstreams there without the removed replicas and with the new (ready) ones, so a new replica is
routed only after its readiness check and a removed one leaves the route before it stops. A server that
gets its first replica of the service gets the route applied; a server left with none has its route
removed in the same step, before the drain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from berth_common.catalogue import ApplicationScaled, ScaleTrigger
from berth_scheduler.domain.placement import server_of
from berth_scheduler.domain.routing import LOCAL, RouteKey, RouteOp


class Phase(StrEnum):
    PENDING = "pending"  # recorded; waits for the application to be free
    STARTING = "starting"  # new replicas created, started, checked
    ROUTING = "routing"  # the merged upstream lists sent to proxy-sync, waiting for confirmation
    DRAINING = "draining"  # removed replicas no longer routed; in-flight requests finish
    STOPPING = "stopping"  # removed replicas get SIGTERM (then SIGKILL) and are removed
    DONE = "done"
    FAILED = "failed"


FINISHED = frozenset({Phase.DONE, Phase.FAILED})


@dataclass(frozen=True)
class Slot:
    """One replica of a service: its service name, replica number and server."""

    service: str
    replica: int
    server_id: str = LOCAL

    def to_json(self) -> list[str | int]:
        where: list[str | int] = [] if self.server_id == LOCAL else [self.server_id]
        return [self.service, self.replica, *where]

    @classmethod
    def from_json(cls, data: Iterable[str | int]) -> Slot:
        service, replica, *where = list(data)
        return cls(str(service), int(replica), str(where[0]) if where else LOCAL)


@dataclass(frozen=True)
class Scale:
    """One scale command as the scheduler carries it out."""

    id: str  # the command's request id
    seq: int  # arrival order (also names its route commands)
    application_id: str
    team_id: str
    trigger: ScaleTrigger
    reason: str
    targets: Mapping[str, int]
    drain_grace_s: float
    phase: Phase = Phase.PENDING
    deployment_id: str | None = None  # the live deployment it scales
    before: Mapping[str, int] = field(default_factory=dict)  # replicas per targeted service when it began
    add: tuple[Slot, ...] = ()
    remove: tuple[Slot, ...] = ()
    deadline_at: float | None = None
    drain_until: float | None = None
    failure: str | None = None
    finished_at: float | None = None
    version: int = 0

    @property
    def owner_id(self) -> str:
        """What its route commands are recorded under (in place of a deployment id)."""
        return f"scale-{self.seq}"

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def moved(self, phase: Phase, **changes: object) -> Scale:
        return replace(self, phase=phase, version=self.version + 1, **changes)  # type: ignore[arg-type]


class UnknownServiceError(ValueError):
    """A scale names a service the live version does not have."""


def plan_slots(
    targets: Mapping[str, int],
    current: Mapping[str, Iterable[int]],
    servers: Mapping[str, Sequence[str]] | None = None,
) -> tuple[tuple[Slot, ...], tuple[Slot, ...]]:
    """(replicas to add, replicas to remove) to go from ``current`` (replica numbers per service) to
    ``targets``, each on its server by the placement rule over the servers the service names (``servers``;
    none: ``local``). A service in ``targets`` that ``current`` does not have raises ``UnknownServiceError``."""
    add: list[Slot] = []
    remove: list[Slot] = []
    for service in sorted(targets):
        if service not in current:
            raise UnknownServiceError(f"the live version has no service {service!r}")
        named = list((servers or {}).get(service) or [LOCAL])
        have = sorted(set(current[service]))
        want = max(targets[service], len(named))
        if want > len(have):
            free = (n for n in range(1, 65 + len(have)) if n not in have)
            add += [Slot(service, n, server_of(named, n)) for n in (next(free) for _ in range(want - len(have)))]
        elif want < len(have):
            remove += [Slot(service, n, server_of(named, n)) for n in have[want:]]
    return tuple(add), tuple(remove)


def route_ops(
    route_id: str,
    hosts: tuple[str, ...],
    servers: Sequence[str],
    confirmed: Mapping[str, tuple[str, ...]],
    removed: Iterable[tuple[str, str]],
    added: Iterable[tuple[str, str]],
) -> list[RouteOp]:
    """The commands of a scale for one web service's route on each of its ``servers`` (in that order) that
    gains or loses a replica. ``confirmed``: the route's confirmed upstreams per server; ``removed`` and
    ``added``: (server, upstream) of the replicas going and the new ready ones. A server left with no
    upstream has its route removed (if it had one)."""
    gone = list(removed)
    new = list(added)
    ops = []
    for server in servers:
        out = [u for where, u in gone if where == server]
        into = [u for where, u in new if where == server]
        if not out and not into:
            continue
        before = confirmed.get(server, ())
        upstreams = merged_upstreams(before, out, into)
        if upstreams:
            ops.append(RouteOp("apply", route_id, hosts, upstreams, server))
        elif before:
            ops.append(RouteOp("remove", route_id, server_id=server))
    return ops


def merged_upstreams(confirmed: Iterable[str], removed: Iterable[str], added: Iterable[str]) -> tuple[str, ...]:
    """A route's upstreams after a scale: the confirmed ones in their order without the removed replicas,
    then the new ones (no duplicates)."""
    gone = set(removed)
    out: dict[str, None] = {}
    for u in (*(u for u in confirmed if u not in gone), *added):
        out.setdefault(u, None)
    return tuple(out)


def counts_after(scale: Scale) -> dict[str, int]:
    """Replicas per targeted service once the scale is done."""
    out = dict(scale.before)
    for slot in scale.add:
        out[slot.service] = out.get(slot.service, 0) + 1
    for slot in scale.remove:
        out[slot.service] = out.get(slot.service, 0) - 1
    return out


def scaled_events(scale: Scale, counts: Mapping[str, int] | None = None) -> list[ApplicationScaled]:
    """One event per targeted service. Done: ``to`` is the target; failed: what is left serving
    (``counts``; the replicas before when not given)."""
    failed = scale.phase == Phase.FAILED
    after = counts_after(scale) if not failed else dict(counts or scale.before)
    return [
        ApplicationScaled(
            application_id=scale.application_id,
            team_id=scale.team_id,
            request_id=scale.id,
            service=service,
            from_replicas=scale.before.get(service, 0),
            to_replicas=after.get(service, scale.before.get(service, 0)),
            trigger=scale.trigger,
            reason=scale.reason,
            outcome="failed" if failed else "scaled",
            failure=(scale.failure or "")[:4000] if failed else None,
        )
        for service in sorted(scale.targets)
    ]


def restore_ops(
    ops: Iterable[RouteOp], before: Mapping[RouteKey, tuple[tuple[str, ...], tuple[str, ...]]]
) -> tuple[RouteOp, ...]:
    """What puts back every route a scale's step changes, should the step not be confirmed in time: the
    hosts and upstreams confirmed before it (``before``, by (server, route)), or the route's removal on a
    server where the step made it (the server's first replica of the service)."""
    out = []
    for op in ops:
        hosts, upstreams = before.get(op.key, ((), ()))
        if upstreams:
            out.append(RouteOp("apply", op.route_id, hosts, upstreams, op.server_id))
        else:
            out.append(RouteOp("remove", op.route_id, server_id=op.server_id))
    return tuple(out)
