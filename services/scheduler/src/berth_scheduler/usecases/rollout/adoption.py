"""Replicas that did not change keep running: the new deployment adopts their containers.

A deployment that changes only the placement (``domain.kept_replicas``: the same version, other servers)
keeps the live replicas on the servers that stay, each as one of the new deployment's slots there (its record
renumbered when adopted), and makes containers only for the other slots.

A service of a compose application (``private_network``) with named volumes or ports published on its server
(its old container stops before a new one binds them) is recreated only when its
definition changed since the live deployment (``domain.containers.definition``: the container it would
make, deployment and host port aside) or its replicas moved. Otherwise the new deployment makes no
container for it: it is not recorded when the deployment enters ``starting``, not started, not stopped for
``strategy: recreate``, and its running replicas (the live deployment's containers, by their names) are
checked and routed like the new ones. When the deployment finishes (``stopping_old``), their records move to
it, so they are kept as its own; a deployment that fails leaves them with the live deployment, untouched.

A tag that turns out to name another image once pulled (its digest differs from the live deployment's) is a
new version: nothing is kept from then on, and each slot not recorded yet is recorded as its replica starts.

The decision reads only the database (the two snapshots, the live deployment's records and the new one's:
a service the new deployment has records of is not kept), so it is the same each time a step is repeated
after a restart. When the kept containers turn out not to be running when the replicas start, the service
is recorded for the new deployment there and then (``steps.start_replicas``), and made again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters import store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import placement
from berth_scheduler.domain.containers import definition
from berth_scheduler.domain.kept_replicas import LiveReplica, SlotKey, kept_in_place
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.usecases.rollout.context import RolloutContext


async def adopted(s: AsyncSession, sealer: Sealer, r: Rollout, spec: ApplicationSpec) -> dict[str, list[Any]]:
    """Service name -> the live deployment's container records the deployment ``r`` keeps for it (all of
    the service's replicas, or those that stay in place when only the placement changes)."""
    stateful = [svc for svc in spec.services if svc.volumes or svc.published_ports] if spec.private_network else []
    live = await store.last_succeeded(s, r.application_id)
    if live is None or live.id == r.deployment_id:
        return {}
    live_spec = sealer.open(live.spec)
    live_image = store.rollout_of(live).run_image
    if not stateful and live_spec.services == spec.services:
        return {}  # the same placement and no stateful compose service: nothing is kept
    rows = await store.containers_of(s, live.id)
    own = await store.containers_of(s, r.deployment_id)
    running = [LiveReplica(row.service, row.replica, row.server_id, row.name) for row in rows]
    recorded_slots = {(o.service, o.replica) for o in own}
    digests = (store.rollout_of(live).image_digest, r.image_digest)  # the new one known once pulled
    in_place = kept_in_place(live_spec, live_image, spec, r.run_image, running, recorded_slots, digests)
    if in_place:  # each record as the new deployment's slot (its replica number there)
        by_name = {row.name: row for row in rows}
        kept: dict[str, list[Any]] = {}
        for (service, n), c in sorted(in_place.items()):
            kept.setdefault(service, []).append(SimpleNamespace(**{**by_name[c.name]._mapping, "replica": n}))
        return kept
    recorded = {row.service for row in own}
    slots = placement.slots(spec)
    out: dict[str, list[Any]] = {}
    for svc in stateful:
        old = next((o for o in live_spec.services if o.name == svc.name), None)
        if old is None or not live_spec.private_network or svc.name in recorded:
            continue
        mine = sorted((row for row in rows if row.service == svc.name), key=lambda row: row.replica)
        wanted = [(slot.replica, slot.server_id) for slot in slots if slot.service.name == svc.name]
        if [(row.replica, row.server_id) for row in mine] != wanted:
            continue
        if all(
            definition(r.application_id, spec, svc, r.run_image, r.team_id, server)
            == definition(r.application_id, live_spec, old, live_image, r.team_id, server)
            for server in {server for _, server in wanted}
        ):
            out[svc.name] = mine
    return out


async def running(rt: RolloutContext, rows: list[Any]) -> bool:
    """Whether every container of ``rows`` runs now (each on its server)."""
    for row in rows:
        info = await (await rt.fleet.docker(row.server_id)).inspect(row.name)
        if not ((info or {}).get("State") or {}).get("Running"):
            return False
    return True


def kept_slots(kept: dict[str, list[Any]]) -> set[SlotKey]:
    """The (service, replica) slots ``adopted`` keeps."""
    return {(row.service, row.replica) for rows in kept.values() for row in rows}
