"""The route switch of Swarm rollouts through proxy-sync: ``cmd.route.apply`` with the manager's
``server_id``, answered by ``evt.route.applied`` / ``evt.route.failed`` on that server's Traefik.

Each change takes the next generation of the route on that server (a route is (server, route id), so a
removal of the application plans its removal there) and is recorded in ``route_ops`` (owner: the Swarm rollout,
step: the generation) in the transaction that stages the command, exactly like a deployment's route steps;
the scheduler's route answer consumers settle it, and this waits for that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.db.unit import Unit
from berth_scheduler.adapters import store
from berth_scheduler.domain.route_tls import RouteTls
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout.routing import command_for, command_id
from berth_scheduler.usecases.rollout.units import RolloutTransactions
from berth_scheduler.usecases.swarm_rollout import RouteNotLive


@dataclass
class BusRoutes:
    units: RolloutTransactions  # the rollouts' transactions (``RolloutContext.units``)
    sessionmaker: async_sessionmaker[AsyncSession]
    owner_id: str  # the deployment (or follower) the route changes belong to
    application_id: str
    timeout_s: float = 30.0
    poll_s: float = 0.1
    clock: Callable[[], float] = field(default=time.monotonic)
    tls: RouteTls | None = None  # the application's HTTPS, carried by every apply (``domain.route_tls``)

    async def apply(self, server_id: str, route_id: str, hosts: Sequence[str], upstreams: Sequence[str]) -> None:
        op = RouteOp("apply", route_id, tuple(hosts), tuple(upstreams), server_id)

        async def stage(unit: Unit) -> int:
            gen = await store.next_generation(unit.session, route_id, self.application_id, server_id)
            await store.add_op(unit.session, self.owner_id, gen, op, gen)
            await unit.emit(command_for(op, gen, self.tls), id=command_id(op, gen))
            return gen

        gen = await self.units.run(stage)
        deadline = self.clock() + self.timeout_s
        while self.clock() < deadline:
            async with self.sessionmaker() as s:
                ops = await store.ops_of(s, self.owner_id, gen)
                rows = [o for o in ops if o.generation == gen and o.server_id == server_id]
            if rows and rows[0].status == "done":
                return
            if rows and rows[0].status == "failed":
                raise RouteNotLive(rows[0].reason or "proxy-sync refused the change")
            await asyncio.sleep(self.poll_s)
        raise RouteNotLive(f"not confirmed live within {self.timeout_s:g}s (is proxy-sync running?)")
