"""Taking an application down, driven by the application's rollout task from the persisted removal.

Each phase is done from the ``removals`` row, so a restart (or another scheduler taking over the
rollouts) resumes it: cancelling waits for the application's deployments to end (the command's handler
cancelled those it could; one past its switch finishes first), then one commit plans the route removals
and stages their commands; routes wait for proxy-sync's confirmations (refused or not confirmed in time:
the routes already removed are put back and the removal ends failed); draining waits out the grace
period; stopping removes the application's Swarm services on its team's Swarms (their tasks stop with their
grace period) and gives every container with the application's label (on the servers it has containers
on and the Swarms' ready nodes) SIGTERM, SIGKILL after its stop timeout, and removes it (a files volume's filler goes with its volume;
one whose start an engine's crash may have interrupted has what still runs of it ended first: ``lost_task.py``); images removes the tags of the application's builds (without force: an image
another tag still uses is only untagged), then, only when the command asked for it, the application's named
volumes on every server its deployments placed them on (kept otherwise). The names found are recorded before they are removed, so the
counts in ``evt.application.removed`` hold across a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common import labels
from berth_common.db.unit import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, files_volumes, removals, store
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import app_files, compose, machine, removal, retention, route_tls, volumes
from berth_scheduler.domain.machine import REVERSIBLE, State
from berth_scheduler.domain.removal import Phase, Removal, RemovalRefusedError
from berth_scheduler.domain.routing import LOCAL, restore_ops
from berth_scheduler.usecases.rollout.admission import lock_application
from berth_scheduler.usecases.rollout.apply import apply
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.lost_task import remove_containers
from berth_scheduler.usecases.rollout.routing import (
    RESTORE_STEP,
    resend_pending,
    route_name,
    stage_step,
    verdict,
    wait_step,
)
from berth_scheduler.usecases.rollout.steps import Waiter, read, write
from berth_scheduler.usecases.rollout.units import emit_all

log = get_logger(__name__)
MAX_BACKOFF_S = 30.0


async def record(unit: Unit, r: Removal, events: list[Any]) -> None:
    """Save the removal and stage its events (ids derived from the attempt and version)."""
    await removals.save(unit.session, r)
    await emit_all(unit, [(e, f"{r.deployment_id}-v{r.version}-{i}", None) for i, e in enumerate(events)])


async def cancel_deployments(unit: Unit, sealer: Sealer, application_id: str, now: float) -> list[str]:
    """Cancel every unfinished deployment of the application that can still be cancelled (queued ones end
    at once; those starting something are undone by the rollout task). The ids of the latter."""
    running = []
    for entry in await store.queue_of(unit.session, application_id):
        row = await store.load(unit.session, entry.deployment_id, lock=True)
        if row is None:
            continue
        r = store.rollout_of(row)
        if r.terminal or r.abort is not None or r.state not in REVERSIBLE:
            continue
        await apply(unit, sealer, r.deployment_id, machine.Cancel(removal.BEING_REMOVED), now)
        if r.state != State.QUEUED:
            running.append(r.deployment_id)
    return running


async def transit(rt: RolloutContext, application_id: str, inp: removal.Input) -> Removal:
    async def body(unit: Unit) -> Removal:
        r = await removals.load(unit.session, application_id, lock=True)
        if r is None:
            raise RemovalRefusedError(f"no removal of {application_id}")
        nxt, events = removal.transition(r, inp, rt.clock())
        await record(unit, nxt, events)
        log.info("removal transition", application_id=application_id, input=type(inp).__name__, phase=nxt.phase.value)
        return nxt

    result: Removal = await rt.units.run(body)
    return result


class RemovalDriver:
    """Runs an application's removal; remembers which route steps it re-sent since this process started."""

    def __init__(self) -> None:
        self._resumed: set[tuple[str, int]] = set()

    async def __call__(self, rt: RolloutContext, application_id: str, wait: Waiter) -> bool:
        """Drive the application's active removal until it ends or has to wait for a deployment to end
        (True), or do nothing (False: no active removal)."""
        backoff = 0.5
        drove = False
        while True:
            r = await read(rt, removals.load, application_id)
            if r is None or not r.active:
                return drove
            drove = True
            try:
                if not await self._step(rt, r, wait):
                    return True  # a deployment of the application has to end first
                backoff = 0.5
            except RemovalRefusedError as exc:
                log.info("removal moved on", application_id=application_id, detail=str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Docker or the database went away: try again from the persisted phase
                log.warning("removal step failed, retrying", application_id=application_id, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _step(self, rt: RolloutContext, r: Removal, wait: Waiter) -> bool:
        match r.phase:
            case Phase.CANCELLING:
                return await self._plan(rt, r, wait)
            case Phase.ROUTES:
                await self._routes(rt, r, wait)
            case Phase.RESTORING:
                await self._restore(rt, r, wait)
            case Phase.DRAINING:
                remaining = (r.drain_until or 0.0) - rt.clock()
                if remaining > 0:
                    await asyncio.sleep(remaining)
                await transit(rt, r.application_id, removal.Drained())
            case Phase.STOPPING:
                await self._stop(rt, r)
            case Phase.IMAGES:
                await self._images(rt, r)
        return True

    async def _plan(self, rt: RolloutContext, r: Removal, wait: Waiter) -> bool:
        """No unfinished deployment left: plan the route removals and stage their commands in one commit."""

        async def body(unit: Unit) -> bool:
            await lock_application(unit, r.application_id)
            now = rt.clock()
            await cancel_deployments(unit, rt.sealer, r.application_id, now)
            if await store.queue_of(unit.session, r.application_id):
                return False
            current = await removals.load(unit.session, r.application_id, lock=True)
            assert current is not None
            routes = tuple(await store.routes_of(unit.session, r.application_id))
            nxt, events = removal.transition(current, removal.RoutesPlanned(routes, rt.settings.route_timeout_s), now)
            await record(unit, nxt, events)
            if nxt.plan is not None and nxt.plan.steps:
                await stage_step(unit, nxt, 0, nxt.plan.steps[0], fresh=True)
            return True

        planned: bool = await rt.units.run(body)
        if planned:
            self._resumed.add((r.deployment_id, 0))
        else:
            await wait(0.5)
        return planned

    async def _routes(self, rt: RolloutContext, r: Removal, wait: Waiter) -> None:
        if (r.deployment_id, 0) not in self._resumed:
            sent = await resend_pending(rt, r, 0)
            log.info("route removals resumed", application_id=r.application_id, resent=sent)
            self._resumed.add((r.deployment_id, 0))
        deadline = r.deadline_at or (rt.clock() + rt.settings.route_timeout_s)
        done, failure = await wait_step(rt, r, 0, deadline, wait)
        if done:
            await transit(rt, r.application_id, removal.RoutesRemoved())
            return
        if failure is None:
            pending = [route_name(o) for o in await read(rt, store.ops_of, r.deployment_id, 0) if o.status == "pending"]
            failure = (
                f"route(s) {', '.join(pending)} not confirmed removed within {rt.settings.route_timeout_s:g}s "
                "(is the proxy-sync service running and Traefik answering?)"
            )
        await transit(rt, r.application_id, removal.RoutesRefused(failure, rt.settings.route_timeout_s))

    async def _restore(self, rt: RolloutContext, r: Removal, wait: Waiter) -> None:
        """Put back, as they were, the routes this attempt removed or may still remove (a refused removal
        left its route as it was); containers were not touched. Waits for every answer (or the deadline)."""
        assert r.plan is not None
        ops0 = await read(rt, store.ops_of, r.deployment_id, 0)
        touched = {(o.server_id, o.route_id) for o in ops0 if o.status != "failed"}
        note = ""
        if touched:
            ops = restore_ops(r.plan, touched)
            live = await read(rt, store.last_succeeded, r.application_id)  # the routes as they were
            tls = None if live is None else route_tls.of_spec(rt.sealer.open(live.spec), r.team_id, r.application_id)

            async def body(unit: Unit) -> bool:
                return await stage_step(unit, r, RESTORE_STEP, ops, tls=tls)

            if await rt.units.run(body):
                self._resumed.add((r.deployment_id, RESTORE_STEP))
            elif (r.deployment_id, RESTORE_STEP) not in self._resumed:
                await resend_pending(rt, r, RESTORE_STEP, tls)
                self._resumed.add((r.deployment_id, RESTORE_STEP))
            deadline = r.deadline_at or (rt.clock() + rt.settings.route_timeout_s)
            while True:
                rows = await read(rt, store.ops_of, r.deployment_id, RESTORE_STEP)
                if all(o.status != "pending" for o in rows) or rt.clock() >= deadline:
                    break
                await wait(min(deadline - rt.clock(), 1.0))
            done, failure = verdict(rows)
            note = "routes restored" if done else f"routes NOT confirmed restored ({failure or 'no answer'})"
        await transit(rt, r.application_id, removal.Restored(note))

    async def _stop(self, rt: RolloutContext, r: Removal) -> None:
        """Every Swarm service and container of the application, on every server it has containers on."""
        from berth_scheduler.usecases.swarm_app import services_of  # Swarm modules load only when used

        swarm = await services_of(rt, r.team_id, r.application_id)
        on = []
        servers = {*await read(rt, store.servers_of_application, r.application_id), *swarm.servers}
        for server in sorted(servers):
            docker = await rt.fleet.docker(server)
            listed = await docker.list_containers({labels.APP: r.application_id})
            on.append((server, docker, [c for c in listed if not app_files.filler(c.labels)]))  # go with volumes
        found = [c for _, _, cs in on for c in cs]
        if any(c.name not in r.containers for c in found):
            await transit(rt, r.application_id, removal.ContainersFound(tuple(c.name for c in found)))
        await swarm.remove()  # first: Swarm would start a task again in place of a container stopped here
        await asyncio.gather(*(d.stop(c.name) for _, d, cs in on for c in cs if c.state in ("running", "restarting")))
        # the helper first where a crash of the engine may have left a lost task (``lost_task.py``)
        await asyncio.gather(*(remove_containers(rt, server, d, cs) for server, d, cs in on))
        for server in sorted(servers):  # a compose application's private and internal networks, where made
            docker = await rt.fleet.docker(server)
            await docker.remove_network(compose.network_name(r.application_id))
            await docker.remove_network(compose.internal_network_name(r.application_id))
        await write(rt, removals.forget_containers, r.application_id)
        await transit(rt, r.application_id, removal.ContainersRemoved())
        log.info("application containers removed", application_id=r.application_id, count=len(found))

    async def _images(self, rt: RolloutContext, r: Removal) -> None:
        built, app_names = await read(rt, removals.built_images, r.application_id)
        repos = removal.repositories(app_names) | await read(rt, build_records.service_repositories, r.application_id)
        labelled = retention.built_images(await rt.docker.list_images({labels.APPLICATION: r.application_id}))
        present = [t for repo in sorted(repos) for t in await rt.docker.image_tags(repo)]
        tags = removal.images_to_remove(labelled, built, present, repos)
        if any(t not in r.images for t in tags):
            r = await transit(rt, r.application_id, removal.ImagesFound(tuple(tags)))
        kept = []
        for tag in r.images:
            if not await rt.docker.untag_image(tag):  # a container outside the application still uses it
                kept.append(tag)
        deleted = await self._volumes(rt, r) if r.delete_volumes else 0
        await self._files_volumes(rt, r)
        await transit(rt, r.application_id, removal.ImagesRemoved(tuple(kept), deleted))
        log.info("application images removed", application_id=r.application_id, tags=r.images, kept=kept)

    async def _files_volumes(self, rt: RolloutContext, r: Removal) -> None:
        """Delete the volumes of the application's read-only files (``domain/app_files.py``) and their
        fillers (one an interrupted fill left too) on every server its deployments placed a service with
        files on, whether its named volumes are kept or not."""
        specs = await read(rt, removals.deployed_specs, r.application_id)
        prefix = app_files.files_volume_prefix(r.application_id)
        for server in dict.fromkeys([LOCAL, *app_files.servers_with_files(specs)]):
            try:
                docker = await rt.fleet.docker(server)
            except ServerRefusedError as exc:
                log.warning("files volumes left on a server Berth does not manage", server_id=server, error=str(exc))
                continue
            await files_volumes.remove_fillers(docker, r.application_id)  # they mount the volumes
            for name in await docker.list_volumes({labels.APP: r.application_id}):
                if name.startswith(prefix):
                    await docker.remove_volume(name)

    async def _volumes(self, rt: RolloutContext, r: Removal) -> int:
        """Delete the application's named volumes (asked for explicitly) on every server its deployments
        placed a service with volumes on; how many were deleted. A server Berth no longer manages is
        skipped (its volumes are left there); one that does not answer is tried again, as for containers."""
        specs = await read(rt, removals.deployed_specs, r.application_id)
        deleted = 0
        for server in dict.fromkeys([LOCAL, *volumes.servers_in_specs(specs)]):
            try:
                docker = await rt.fleet.docker(server)
            except ServerRefusedError as exc:
                log.warning("volumes left on a server Berth does not manage", server_id=server, error=str(exc))
                continue
            for name in await docker.list_volumes({labels.APP: r.application_id, labels.TEAM: r.team_id}):
                if not name.startswith(app_files.files_volume_prefix(r.application_id)):  # its own step's
                    deleted += int(await docker.remove_volume(name))
        log.info("application volumes deleted", application_id=r.application_id, count=deleted)
        return deleted
