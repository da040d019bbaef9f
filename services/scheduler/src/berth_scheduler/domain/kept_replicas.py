"""A deployment that only changes where an application runs keeps the replicas that stay where they are.

When the new deployment runs the same version as the live one (the same image, and a spec that differs only in
each service's ``servers`` and ``replicas``: a drain, a placement change) and its placement differs, a live
replica on a server that stays in the new placement keeps running: the new deployment makes no container for
it and adopts the live one (``usecases/rollout/adoption.py``), so only the replicas on the servers left are
replaced (an application on servers [A, C] moved to [B, C]: A's replica is replaced by one on B, C's keeps its
container). On each server that stays, the service's new slots there take its live replicas there, both in
replica order; the numbers may differ (replicas are spread over the servers in turn: ``placement.py``), so
[A, B, C] moved to [A, C] makes C's replica number 3 the new number 2 (its record renumbered when the
deployment adopts it). A slot left without one gets a new container, as a version change does for every slot.

A slot the new deployment already recorded a container for is not kept (a kept replica found stopped when the
replicas start is recorded and made again), so the decision is the same each time a step is repeated.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import placement

SlotKey = tuple[str, int]  # (service, replica number)
PLACEMENT_FIELDS = ("servers", "replicas")  # what a placement-only change may change in a service


@dataclass(frozen=True)
class LiveReplica:
    """A container of the live deployment: its service, replica number, server and name."""

    service: str
    replica: int
    server_id: str
    name: str


def _version(spec: ApplicationSpec) -> ApplicationSpec:
    """The spec without its placement: what the containers run (compared as models: a secret's value by
    its plaintext, never by its sealed form)."""
    bare = {field: None for field in PLACEMENT_FIELDS}
    return spec.model_copy(update={"services": [svc.model_copy(update=bare) for svc in spec.services]})


def _slots(spec: ApplicationSpec) -> list[tuple[str, int, str]]:
    return [(s.service.name, s.replica, s.server_id) for s in placement.slots(spec)]


def placement_only(
    live: ApplicationSpec, live_image: str, spec: ApplicationSpec, image: str, running: Iterable[LiveReplica]
) -> bool:
    """Whether a deployment of ``spec`` running ``image`` changes only the placement of the live one, whose
    replicas are ``running`` (its records: a scale since its deployment changed them, not its spec)."""
    placed = sorted((c.service, c.replica, c.server_id) for c in running)
    return live_image == image and placed != sorted(_slots(spec)) and _version(live) == _version(spec)


def kept_in_place(
    live: ApplicationSpec,
    live_image: str,
    spec: ApplicationSpec,
    image: str,
    running: Iterable[LiveReplica],
    recorded: Collection[SlotKey] = (),
    digests: tuple[str | None, str | None] = (None, None),
) -> dict[SlotKey, LiveReplica]:
    """(service, replica) of the new deployment -> the live replica it keeps there ({} unless the deployment
    changes only the placement). ``recorded``: the slots the new deployment has container records of;
    ``digests``: the live image's and the new one's once pulled (a tag that moved is a new version)."""
    running = list(running)
    if all(digests) and digests[0] != digests[1]:
        return {}
    if not placement_only(live, live_image, spec, image, running):
        return {}
    fresh: dict[tuple[str, str], list[int]] = {}  # (service, server) -> the new replica numbers there
    for service, n, server in _slots(spec):
        fresh.setdefault((service, server), []).append(n)
    old: dict[tuple[str, str], list[LiveReplica]] = {}
    for c in sorted(running, key=lambda c: (c.service, c.replica)):
        old.setdefault((c.service, c.server_id), []).append(c)
    paired = {
        (service, n): c
        for (service, server), numbers in fresh.items()
        for n, c in zip(numbers, old.get((service, server), []), strict=False)
    }
    return {slot: c for slot, c in paired.items() if slot not in recorded}
