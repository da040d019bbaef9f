"""Routes that follow a Swarm's tasks: while a deployment placed on a Swarm is live, its routes stay on the
tasks that run and pass Berth's readiness check.

Each pass looks at every application whose last succeeded deployment runs on a Swarm (and that is not
being taken down): when the ready tasks of a web service differ from what its route was last set to here,
the route is set to them (``cmd.route.apply`` with the manager's ``server_id``). So when a worker dies,
its tasks fail the check and leave the route, and the tasks Swarm starts on the nodes left join it once
ready. A route never goes empty: with no task ready it keeps the last ones. Only the leading scheduler
follows (``leading``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from berth_common.catalogue import WebService
from berth_common.logging import get_logger
from berth_scheduler.adapters import removals, store, tables
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain.machine import State
from berth_scheduler.domain.removal import Phase
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.swarm_step import SwarmStarting, places_of
from berth_scheduler.usecases.swarm_app import overlay_probe
from berth_scheduler.usecases.swarm_rollout import RouteNotLive

log = get_logger(__name__)


@dataclass
class SwarmFollower:
    rt: RolloutContext
    starting: SwarmStarting
    leading: Callable[[], bool]
    interval_s: float = 2.0
    routed: dict[str, list[str]] = field(default_factory=dict)  # route id -> upstreams set here last
    # (manager server, overlay network) -> its overlay probe, kept from pass to pass: its relay serves every
    # pass's checks of tasks on nodes Berth does not reach (ended when no pass came for its idle time)
    overlays: dict[tuple[str, str], OverlayProbe] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def live_on_swarms(self) -> list[tuple[str, object]]:
        """(application id, its live deployment row) of every application whose services run on a Swarm."""
        d = tables.deployments
        async with self.rt.sessionmaker() as s:
            apps = (
                await s.execute(sa.select(d.c.application_id).where(d.c.state == State.SUCCEEDED.value).distinct())
            ).scalars()
            out = []
            for app in sorted(apps):
                removal = await removals.load(s, app)
                if removal is not None and removal.phase != Phase.FAILED:
                    continue
                row = await store.last_succeeded(s, app)
                if row is not None:
                    out.append((app, row))
        return out

    async def tick(self) -> None:
        """One pass over every live application. Each is followed on its own: one whose Swarm service went
        missing, or whose manager does not answer, is logged and left for the next pass, and the others'
        routes still follow their tasks in this one."""
        for app, row in await self.live_on_swarms():
            try:
                await self._follow(row)
            except asyncio.CancelledError:
                raise
            except (RouteNotLive, OSError, ConnectionError, sa.exc.SQLAlchemyError) as exc:
                log.info("swarm routes of an application not followed this time", application_id=app, error=str(exc))
            except Exception as exc:  # a server gone from the directory, an engine error: next pass
                log.warning(
                    "swarm routes of an application not followed this time",
                    application_id=app,
                    error=f"{type(exc).__name__}: {exc}",
                )

    async def _follow(self, row: object) -> None:
        r = store.rollout_of(row)
        spec = self.rt.sealer.open(row.spec)  # type: ignore[attr-defined]
        places = await places_of(self.rt, r, spec)
        for svc in spec.services:
            place = places.get(svc.name)
            if place is None or not isinstance(svc, WebService) or not svc.hosts:
                continue
            key = (place.manager_server_id, place.network)
            overlay = self.overlays.get(key) or self.overlays.setdefault(key, overlay_probe(self.rt, place))
            rollout, version = await self.starting.rollout_of(self.rt, r, spec, svc, place, overlay)
            port = version.replica.container_port or svc.port
            wanted = dom.upstreams(await rollout.ready_tasks(version), port)
            if wanted and wanted != self.routed.get(version.route_id) and not await self._busy(r.application_id, row):
                await rollout.routes.apply(place.manager_server_id, version.route_id, version.hosts, wanted)
                self.routed[version.route_id] = wanted
                log.info("swarm route follows its tasks", route_id=version.route_id, upstreams=len(wanted))

    async def _busy(self, application_id: str, live: object) -> bool:
        """Whether a deployment of the application started meanwhile (its rollout then owns the route), or
        one even finished while this pass probed ``live``'s tasks (the route is the newer version's now), or
        its removal (which takes the route down)."""
        async with self.rt.sessionmaker() as s:
            if application_id in await store.unfinished_applications(s) or await removals.is_active(s, application_id):
                return True
            last = await store.last_succeeded(s, application_id)
            return last is None or last.id != live.id  # type: ignore[attr-defined]

    async def _loop(self) -> None:
        while True:
            if self.leading():
                try:
                    await self.tick()
                except (RouteNotLive, OSError, ConnectionError, sa.exc.SQLAlchemyError) as exc:
                    log.info("swarm routes not followed this time", error=str(exc))
                except Exception as exc:  # a server gone from the directory, an engine error: next pass
                    log.warning("swarm routes not followed this time", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="swarm-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
