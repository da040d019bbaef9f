"""A compose application's start order: before a layer of services starts, each dependency its services
name meets its condition on every replica (``domain/compose.py`` reads a container's state), looked at
through the engine of the server each replica runs on, until the deployment's readiness deadline.

A dependency that cannot meet its condition any more, or that does not meet it in time, raises
:class:`DependencyFailedError` with a reason naming the service and what was seen: the deployment fails
with it (its new containers are removed, the live version keeps serving).
"""

from __future__ import annotations

import asyncio
import time

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import compose
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.usecases.rollout.context import RolloutContext

FIRST_PAUSE_S = 0.02
MAX_PAUSE_S = 0.25
WORDS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed successfully",
}


class DependencyFailedError(RuntimeError):
    """A dependency did not meet its condition; the message is for a person and names the service."""


async def wait_dependencies(
    rt: RolloutContext, spec: ApplicationSpec, layer: list[str], started: list[ContainerSpec], deadline: float
) -> None:
    """Return once every dependency of the services of ``layer`` meets its condition (``started``: the
    replicas running so far); raise :class:`DependencyFailedError` otherwise."""
    waits = compose.waits_before(spec, layer)
    if not waits:
        return
    waiting = [s.name for s in spec.services if s.name in layer and s.depends_on]
    who = ", ".join(waiting)
    checks = [_one(rt, cs, condition, deadline, who) for dep, condition in waits for cs in started if cs.service == dep]
    await asyncio.gather(*checks)


async def _one(rt: RolloutContext, cs: ContainerSpec, condition: str, deadline: float, who: str) -> None:
    docker = await rt.fleet.docker(cs.server_id)
    pause = FIRST_PAUSE_S
    while True:
        look = compose.condition_look(condition, cs.service, await docker.inspect(cs.name))
        if look.met:
            return
        if look.failed is not None:
            raise DependencyFailedError(f"{who} cannot start: {look.failed}")
        if time.time() >= deadline:
            raise DependencyFailedError(
                f"{who} cannot start: service {cs.service} was not {WORDS.get(condition, condition)} before the "
                f"deadline ({look.seen})"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, MAX_PAUSE_S)
