"""Rollouts on a Swarm, Berth's own sequence: one service version runs as one Swarm service, and Swarm places
and restarts its tasks while Berth keeps its readiness gate and Traefik switch.

``SwarmRollout.run``: start the new version's service; wait until ``replicas`` of its tasks run and pass
Berth's readiness check; switch the route on the manager's Traefik to exactly those tasks (confirmed live);
drain (the old tasks finish what they were sent); remove the older versions' services. A worker, or a web
service without a host, has no route: its tasks are ready when they run (and, for web, pass the check),
then the older versions go. If the new tasks are
not ready in time or the route is not confirmed, the new service is removed and the old one keeps serving.
Every step looks before it acts (a service of that name is the same service, a removed one is gone), so
running the same version again after a restart gives the same result.

A ``strategy: recreate`` service with volumes (``SwarmVersion.pinned``: every version on the manager's node,
where its local volume is) stops first: the older versions are scaled to no task (keeping how many they had
in a label) and their containers have stopped before the new service is created; the caller is told how
many stopped (expected downtime). If the new version does not serve, the older ones get their tasks back.

A version not ready in time is told with what each task did, what the readiness check of each running task
last saw (``TaskProbe.said``) and one task's last log lines, read through its node before its service goes.
A task answering the same final error status for ``stuck_s`` (not a 502/503/504 of a starting app) fails
the version at once, as a replica's check does, rather than at the deadline.

While a version serves, ``rollout/swarm_follow.py`` keeps its route on the tasks that run and pass the
check (``ready_tasks``). Routing-mesh ports are not used: Traefik on the manager is on the overlay network
and routes to task addresses. Routes go through a ``RouteSwitch`` (``cmd.route.apply`` with the
manager's ``server_id`` through proxy-sync, ``usecases/swarm_routes.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from berth_common.logging import get_logger
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain.swarm_app import container_name

log = get_logger(__name__)


class RouteSwitch(Protocol):
    async def apply(self, server_id: str, route_id: str, hosts: Sequence[str], upstreams: Sequence[str]) -> None:
        """Set the route on ``server_id``'s Traefik; return once it is live (raise ``RouteNotLive`` if not)."""


class TaskProbe(Protocol):
    said: dict[str, str]  # task id -> what its last failed check saw, in words

    def reaches(self, task: dom.Task) -> bool:
        """Whether the check can be made on the task's node (a node Berth reaches over SSH)."""
        ...

    def reaches_over_overlay(self, task: dom.Task) -> bool:
        """Whether a task on a node Berth does not reach is checked over the overlay network instead."""
        ...

    async def ready(self, task: dom.Task, port: int, path: str) -> bool: ...

    async def last_lines(self, service_name: str, task: dict[str, Any] | None, lines: int = 15) -> str: ...

    def stuck(self, seconds: float) -> float | None: ...


Stopped = Callable[[int], Awaitable[None]]  # told how many older tasks a recreate stopped


class RouteNotLive(Exception):
    """The route change was refused or not confirmed live; the message says why."""


class SwarmRolloutFailed(Exception):
    """The new version does not serve; the old one keeps serving. The message is for a person."""


@dataclass
class SwarmRollout:
    manager: SwarmEngine
    manager_server_id: str
    routes: RouteSwitch
    probe: TaskProbe
    ready_timeout_s: float = 120.0
    drain_s: float = 2.0
    interval_s: float = 0.5
    worker_settle_s: float = 1.0
    stuck_s: float = 5.0  # a task answering the same error status this long: the version fails at once
    clock: Callable[[], float] = field(default=time.monotonic)
    _running_since: dict[str, float] = field(default_factory=dict, init=False)  # task id -> first seen running

    async def ready_tasks(self, version: dom.SwarmVersion) -> list[dom.Task]:
        """The version's tasks that run and pass the readiness check now (checked together). A worker's
        task is ready once it has been seen running for ``worker_settle_s`` (Swarm runs its health command,
        if it has one, before it counts as running): a task that exits is replaced by a new task, so a
        worker that keeps crashing is never ready, however often a look finds one of its tasks running.

        A web task on a node Berth does not reach (an adopted Swarm's worker) gets Berth's GET over the overlay
        network (from the overlay probe on the manager's node) when the service has no health check of its
        own; with one, it is ready when Swarm reports the task running (which it does only once that check
        passed, and a task turning unhealthy is failed and replaced). A probe that cannot check over the
        overlay leaves a task without a health check never ready, and the version says so."""
        port, path = version.replica.container_port, version.replica.health_path or "/"
        tasks = dom.running(await self.manager.tasks(version.service.name), version.network)
        if port is None:
            now = self.clock()
            since = [self._running_since.setdefault(t.task_id, now) for t in tasks]
            return [t for t, at in zip(tasks, since, strict=True) if now - at >= self.worker_settle_s]
        engine = version.service.engine_checked
        reached = [t for t in tasks if self.probe.reaches(t) or (not engine and self.probe.reaches_over_overlay(t))]
        checks = await asyncio.gather(*(self.probe.ready(t, port, path) for t in reached))
        ready = [t for t, ok in zip(reached, checks, strict=True) if ok]
        for task in (t for t in tasks if t not in reached):
            if engine:
                self.probe.said.pop(task.task_id, None)
                ready.append(task)
            else:
                self.probe.said[task.task_id] = dom.UNREACHED_UNCHECKED
        return sorted(ready, key=lambda t: (t.address, t.task_id))

    async def run(self, version: dom.SwarmVersion, stopped: Stopped | None = None) -> list[str]:
        """Roll ``version`` out; the upstreams it serves on (none for a service without a route). A
        ``recreate`` version first stops the older versions' tasks (``stopped`` is told how many: expected
        downtime), and starts them again when it does not serve."""
        svc = version.service
        port = version.replica.container_port
        if version.recreate:
            count = await self._stop_older(version)
            if stopped is not None and count:
                await stopped(count)
        await self.manager.create_service(svc.body, version.registry_auth)
        log.info("swarm service started", service=svc.name, replicas=version.replicas)
        started = self.clock()
        deadline = started + self.ready_timeout_s
        while len(ready := await self.ready_tasks(version)) < version.replicas:
            stuck = self.probe.stuck(self.stuck_s) if port is not None else None
            if self.clock() > deadline or stuck is not None:
                why = await self._not_ready(version, len(ready), self.clock() - started)
                await self._start_older(version)
                raise SwarmRolloutFailed(why)
            await asyncio.sleep(self.interval_s)
        upstreams = dom.upstreams(ready, port) if port is not None and version.hosts else []
        if upstreams:
            try:
                await self.routes.apply(self.manager_server_id, version.route_id, version.hosts, upstreams)
            except RouteNotLive as exc:
                await self.manager.remove_service(svc.name)
                await self._start_older(version)
                raise SwarmRolloutFailed(f"route {version.route_id} not switched: {exc}") from None
            log.info("swarm route switched", service=svc.name, upstreams=len(upstreams))
        olds = dom.older(await self.manager.services(version.family), svc.name)
        if olds and upstreams:  # requests the old tasks were sent finish; a service without a route has none
            await asyncio.sleep(self.drain_s)
        for name in olds:
            await self.manager.remove_service(name)
            log.info("swarm service removed", service=name, replaced_by=svc.name)
        return upstreams

    async def _not_ready(self, version: dom.SwarmVersion, ready: int, waited_s: float) -> str:
        """Why the version is not ready (its tasks' states, what the check saw, one task's last log lines),
        read before its service is removed (its task containers go with it); then the service goes."""
        svc = version.service
        tasks = await self.manager.tasks(svc.name)
        task = dom.logged_task(tasks)
        logs = await self.probe.last_lines(svc.name, task)
        await self.manager.remove_service(svc.name)
        check = f"GET {version.replica.health_path or '/'}" if version.replica.container_port is not None else None
        container = container_name(svc.name, task) if task is not None else ""
        return dom.not_ready_text(
            svc.name, ready, version.replicas, round(waited_s), tasks, check, self.probe.said, logs, container
        )

    async def _stop_older(self, version: dom.SwarmVersion) -> int:
        """Scale the older versions to no task and wait until their containers stopped (the new version's
        task may then mount their volume on the same node); how many tasks they had. Done again after a
        restart, it finds them stopped and counts what they had."""
        count = 0
        olds = dom.older(await self.manager.services(version.family), version.service.name)
        for name in olds:
            found = await self.manager.service(name)
            if found is None:
                continue
            if dom.replicas_of(found) > 0:
                spec, index = dom.scaled(found, 0)
                await self.manager.update_service(name, spec, index)
                log.info("swarm service stopped for a recreate", service=name)
                found = await self.manager.service(name) or found
            count += dom.stopped_replicas(found)
        deadline = self.clock() + self.ready_timeout_s
        for name in olds:
            while dom.still_running(await self.manager.tasks(name)):
                if self.clock() > deadline:
                    raise SwarmRolloutFailed(f"the tasks of {name} did not stop within {self.ready_timeout_s:g}s")
                await asyncio.sleep(self.interval_s)
        return count

    async def _start_older(self, version: dom.SwarmVersion) -> None:
        """Undo of a recreate: the older versions stopped for it get their tasks again."""
        if not version.recreate:
            return
        for name in dom.older(await self.manager.services(version.family), version.service.name):
            found = await self.manager.service(name)
            if found is not None and dom.replicas_of(found) == 0 and dom.stopped_replicas(found) > 0:
                spec, index = dom.scaled(found, dom.stopped_replicas(found))
                await self.manager.update_service(name, spec, index)
                log.info("swarm service started again after a failed recreate", service=name)
