"""Handlers of the scheduler service: one async function per command or event it consumes.

Each runs in one transaction with its message id (``UnitRunner.run(..., delivery=...)``, the scheduler's
form of ``berth_common.db.idempotent``); deployment handlers only record the input in the persisted state
machine (a new deployment of a free application is also admitted there). The rollout tasks do the long work, and
the entry points wake them after the transaction commits.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert

from berth_common.bus import PermanentError, TransientError
from berth_common.catalogue import (
    BuildCancelled,
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    DeploymentProgressed,
    ImageSource,
    PingService,
    RemoveApplication,
    RouteFailed,
    RouteRemoved,
    RoutesApplied,
    ServicePinged,
    StartDeployment,
)
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import removals, store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.adapters.tables import pings
from berth_scheduler.domain import machine, names, queueing, removal
from berth_scheduler.domain.machine import RefusedError, Rollout, State, Timeouts
from berth_scheduler.usecases.rollout.admission import admit_next, lock_application
from berth_scheduler.usecases.rollout.apply import apply, emit_events, secrets_of
from berth_scheduler.usecases.rollout.removal import cancel_deployments, record
from berth_scheduler.settings import SchedulerSettings

log = get_logger(__name__)


async def on_ping(msg: PingService, unit: Unit) -> None:
    """Record the ping (a second effect would bump ``count``) and answer with an event."""
    stmt = insert(pings).values(nonce=msg.nonce)
    await unit.session.execute(
        stmt.on_conflict_do_update(index_elements=[pings.c.nonce], set_={"count": pings.c.count + 1})
    )
    await unit.emit(ServicePinged(nonce=msg.nonce, service="scheduler"))


@dataclass
class DeploymentHandlers:
    settings: SchedulerSettings
    sealer: Sealer
    # A new deployment of a free application is admitted by its start command's handler (one commit); off,
    # the rollout task admits it in a transaction of its own.
    admit_at_start: bool = True

    def timeouts(self, msg: StartDeployment) -> Timeouts:
        o, s = msg.options, self.settings
        return Timeouts(
            build_s=o.build_timeout_s if o.build_timeout_s is not None else s.build_timeout_s,
            readiness_s=o.readiness_timeout_s if o.readiness_timeout_s is not None else s.readiness_timeout_s,
            route_s=s.route_timeout_s,
            drain_grace_s=o.drain_grace_s if o.drain_grace_s is not None else s.drain_grace_s,
        )

    async def on_start(self, msg: StartDeployment, unit: Unit) -> None:
        """Record the deployment as queued (the application's rollout task admits it when it is free)."""
        now = time.time()
        image = msg.spec.source.image if isinstance(msg.spec.source, ImageSource) else None
        r = Rollout(
            deployment_id=msg.deployment_id,
            application_id=msg.application_id,
            team_id=msg.team_id,
            state=State.QUEUED,
            needs_build=image is None,
            timeouts=self.timeouts(msg),
            created_at=now,
            image=image,
        )
        try:  # every name this deployment will give containers and routes
            for svc in msg.spec.services:
                names.container_name(msg.spec.name, svc.name, msg.deployment_id, svc.replicas)
                names.route_id(msg.application_id, svc.name)
        except names.InvalidNameError as exc:
            raise PermanentError(str(exc)) from None
        build_id = None if image else uuid.uuid4().hex
        seq = await store.insert_deployment(unit.session, r, self.sealer.seal(msg.spec), build_id)
        if seq is None:
            log.info("deployment already known", deployment_id=msg.deployment_id)
            return
        await lock_application(unit, msg.application_id)
        refusal = removal.start_refusal(await removals.load(unit.session, msg.application_id))
        if refusal is not None:  # ends failed at once, as a deployment that cannot start
            await apply(unit, self.sealer, msg.deployment_id, machine.Fail(refusal), now)
            return
        entries = await store.queue_of(unit.session, msg.application_id)
        me = queueing.QueueEntry(msg.deployment_id, State.QUEUED, seq)
        if msg.options.when_busy == "replace_queued":
            for old in queueing.replaced_by(me, entries):
                await apply(
                    unit, self.sealer, old.deployment_id, machine.Cancel(f"replaced by {msg.deployment_id}"), now
                )
            entries = await store.queue_of(unit.session, msg.application_id)
        ahead = queueing.position(me, entries)
        detail = f"{ahead} deployment(s) of this application ahead" if ahead else "next to run"
        progressed = DeploymentProgressed(
            deployment_id=r.deployment_id, application_id=r.application_id, state="queued", step="queued", detail=detail
        )
        await emit_events(unit, r.deployment_id, "v0", [progressed], [])
        if self.admit_at_start and not ahead:  # the application is free: it starts in this transaction
            await admit_next(unit, self.sealer, msg.application_id, now, entries)

    async def on_remove(self, msg: RemoveApplication, unit: Unit) -> list[str]:
        """Record the removal (the application's rollout task carries it out) and cancel the deployments that
        can still be cancelled; the ids of those the rollout task has to undo (to interrupt their step).

        Already removed: answered removed again; being removed: nothing more to do; never seen (no
        deployment, no route): removed at once with zero counts; failed before: a new attempt."""
        app, now = msg.application_id, time.time()
        await lock_application(unit, app)
        previous = await removals.load(unit.session, app, lock=True)
        if previous is not None and previous.phase == removal.Phase.REMOVED:
            tag = unit.delivery.envelope.id if unit.delivery else uuid.uuid4().hex
            await unit.emit(removal.removed_event(previous), id=f"{previous.deployment_id}-again-{tag}")
            return []
        if previous is not None and previous.active:
            log.info("removal already in progress", application_id=app, phase=previous.phase.value)
            return []
        if not await removals.application_known(unit.session, app):
            gone, event = removal.never_seen(app, msg.team_id, now, previous)
            await record(unit, gone, [event])
            return []
        grace = msg.drain_grace_s if msg.drain_grace_s is not None else self.settings.drain_grace_s
        await record(unit, removal.requested(app, msg.team_id, grace, now, previous), [])
        return await cancel_deployments(unit, self.sealer, app, now)

    async def on_cancel(self, msg: CancelDeployment, unit: Unit) -> None:
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is None:
            # the start command may still be on its way (another consumer): try again later
            raise TransientError(f"unknown deployment {msg.deployment_id}")
        try:
            await apply(unit, self.sealer, msg.deployment_id, machine.Cancel(msg.reason), time.time())
        except RefusedError as exc:
            r = store.rollout_of(row)
            if r.terminal:
                return
            refused = DeploymentProgressed(
                deployment_id=r.deployment_id,
                application_id=r.application_id,
                state=r.state.value,
                step="cancel refused",
                detail=str(exc),
            )
            tag = f"cancel-{unit.delivery.envelope.id if unit.delivery else uuid.uuid4().hex}"
            await emit_events(unit, r.deployment_id, tag, [refused], [])

    async def on_build_succeeded(self, msg: BuildSucceeded, unit: Unit) -> None:
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is None or row.build_id != msg.build_id:
            log.info("build result for no deployment of ours", deployment_id=msg.deployment_id, build_id=msg.build_id)
            return
        detail = " (reused an image built from the same commit)" if msg.reused else ""
        try:
            await apply(unit, self.sealer, msg.deployment_id, machine.BuildSucceeded(msg.image), time.time())
        except RefusedError as exc:
            log.info("late build result ignored", deployment_id=msg.deployment_id, detail=str(exc) + detail)

    async def on_build_failed(self, msg: BuildFailed, unit: Unit) -> None:
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is None or row.build_id != msg.build_id:
            return
        reason = names.redact(f"{msg.stage}: {msg.reason}", secrets_of(self.sealer, row))
        try:
            await apply(unit, self.sealer, msg.deployment_id, machine.BuildFailed(reason), time.time())
        except RefusedError as exc:
            log.info("late build failure ignored", deployment_id=msg.deployment_id, detail=str(exc))

    async def on_build_cancelled(self, msg: BuildCancelled, unit: Unit) -> None:
        """The builder stopped a build this scheduler asked it to stop: nothing left to change (the deployment
        was cancelled or failed when the cancel was sent); recorded for the logs."""
        log.info("build stopped", deployment_id=msg.deployment_id, build_id=msg.build_id, seconds=msg.duration_s)

    async def on_route_applied(self, msg: RoutesApplied, unit: Unit) -> None:
        reason = None if msg.live else "the change was written but Traefik does not show it live"
        await store.settle_op(unit.session, msg.route_id, msg.generation, msg.live, reason)

    async def on_route_removed(self, msg: RouteRemoved, unit: Unit) -> None:
        await store.settle_op(unit.session, msg.route_id, msg.generation, True, None)

    async def on_route_failed(self, msg: RouteFailed, unit: Unit) -> None:
        await store.settle_op(unit.session, msg.route_id, msg.generation, False, msg.reason)
