"""Scaling the live version of an application: which replicas to add or remove, the routes after, the events.

A scale is persisted phase by phase (``pending``, ``starting``, ``routing``, ``draining``, ``stopping``,
then ``done`` or ``failed``), so a restart resumes it. New replicas take the lowest free replica numbers of
their service; removed ones are the highest numbered. Routes change once: every route of a touched web
service gets its confirmed upstreams without the removed replicas and with the new (ready) ones, so a new
replica is routed only after its readiness check and a removed one leaves the route before it stops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from berth_common.catalogue import ApplicationScaled, ScaleTrigger


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
    """One replica of a service: its service name and replica number."""

    service: str
    replica: int

    def to_json(self) -> list[str | int]:
        return [self.service, self.replica]

    @classmethod
    def from_json(cls, data: Iterable[str | int]) -> Slot:
        service, replica = list(data)
        return cls(str(service), int(replica))


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
    targets: Mapping[str, int], current: Mapping[str, Iterable[int]]
) -> tuple[tuple[Slot, ...], tuple[Slot, ...]]:
    """(replicas to add, replicas to remove) to go from ``current`` (replica numbers per service) to
    ``targets``. A service in ``targets`` that ``current`` does not have raises ``UnknownServiceError``."""
    add: list[Slot] = []
    remove: list[Slot] = []
    for service in sorted(targets):
        if service not in current:
            raise UnknownServiceError(f"the live version has no service {service!r}")
        have = sorted(set(current[service]))
        want = targets[service]
        if want > len(have):
            free = (n for n in range(1, 65 + len(have)) if n not in have)
            add += [Slot(service, next(free)) for _ in range(want - len(have))]
        elif want < len(have):
            remove += [Slot(service, n) for n in have[want:]]
    return tuple(add), tuple(remove)


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
