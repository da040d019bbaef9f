"""Deployments as the scheduler's messages change them: each records its input in the persisted machine.

Carries out ``cmd.deployment.start`` (the deployment is recorded as queued and, when its application is
free, admitted in the same transaction), ``cmd.deployment.cancel``, and applies ``evt.build.succeeded``,
``evt.build.failed``, ``evt.build.cancelled``, ``evt.route.applied``, ``evt.route.removed`` and
``evt.route.failed`` to the deployment or route step they answer. Each runs inside the consumed message's
transaction (``berth_common.db.consume_once``); the application's rollout task does the long work once
the entry point wakes it after the commit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from berth_common.bus import PermanentError, TransientError
from berth_common.catalogue import (
    ApplicationSpec,
    BuildCancelled,
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    DeploymentProgressed,
    GitSource,
    ImageSource,
    RouteFailed,
    RouteRemoved,
    RoutesApplied,
    StartDeployment,
)
from berth_common.db import Unit
from berth_common.images import image_map, resolve_image
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, removals, store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import builds, machine, names, placement, queueing, removal, service_images
from berth_scheduler.domain.machine import RefusedError, Rollout, State, Timeouts
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.rollout.admission import admit_next, lock_application
from berth_scheduler.usecases.rollout.apply import apply, cancel_builds, emit_events, secrets_of

log = get_logger(__name__)


def check_names(msg: StartDeployment) -> None:
    """Every name this deployment will give containers and routes is valid, or the command is refused."""
    try:
        for svc in msg.spec.services:
            names.container_name(msg.spec.name, svc.name, msg.deployment_id, placement.replica_count(svc))
            names.route_id(msg.application_id, svc.name)
            if svc.build is not None:
                builds.service_tag(msg.spec.name, svc.name, msg.deployment_id)
                if not isinstance(msg.spec.source, GitSource):
                    raise names.InvalidNameError(f"service {svc.name} builds its own image: it needs a git source")
    except names.InvalidNameError as exc:
        raise PermanentError(str(exc)) from None


@dataclass
class Deployments:
    settings: SchedulerSettings
    sealer: Sealer
    # A new deployment of a free application is admitted in its start command's transaction (one commit);
    # off, the rollout task admits it in a transaction of its own.
    admit_at_start: bool = True

    def timeouts(self, msg: StartDeployment) -> Timeouts:
        o, s = msg.options, self.settings
        return Timeouts(
            build_s=o.build_timeout_s if o.build_timeout_s is not None else s.build_timeout_s,
            readiness_s=o.readiness_timeout_s if o.readiness_timeout_s is not None else s.readiness_timeout_s,
            route_s=s.route_timeout_s,
            drain_grace_s=o.drain_grace_s if o.drain_grace_s is not None else s.drain_grace_s,
        )

    def rollout_of(self, msg: StartDeployment, now: float, spec: ApplicationSpec | None = None) -> Rollout:
        """The deployment as the state machine holds it. A prebuilt image goes through the image map
        (``BERTH_IMAGE_MAP``, without the defaults the builder adds for its base images): the mapped reference
        is what is pulled and run. ``spec``: the snapshot it runs (a rollback's, whose services may all run
        images of their own: then nothing is built)."""
        spec = spec or msg.spec
        image = (
            resolve_image(spec.source.image, image_map(self.settings.image_map, defaults={}))
            if isinstance(spec.source, ImageSource)
            else None
        )
        built = msg.images_of is not None and service_images.builds_nothing(spec)
        return Rollout(
            deployment_id=msg.deployment_id,
            application_id=msg.application_id,
            team_id=msg.team_id,
            state=State.QUEUED,
            needs_build=image is None and not built,
            timeouts=self.timeouts(msg),
            created_at=now,
            image=image,
        )

    async def start(self, msg: StartDeployment, unit: Unit) -> None:
        """Record the deployment as queued; it fails at once when its application is being removed, replaces
        the queued ones when asked to, and starts here when nothing of its application is ahead of it."""
        now = time.time()
        check_names(msg)
        spec, refusal = msg.spec, None
        if msg.images_of is not None:  # a rollback: the services run the images of that deployment
            rolled = service_images.rolled_back(spec, await build_records.images_of(unit.session, msg.images_of))
            spec, refusal = rolled.spec, rolled.refusal
        r = self.rollout_of(msg, now, spec)
        # a compose service's own build adds one; the application's is asked only if one runs it
        app_build = r.needs_build and (not builds.has_service_builds(spec) or builds.runs_app_image(spec))
        build_id = uuid.uuid4().hex if app_build else None
        abandon = msg.options.abandon_volume_data
        # held before the deployment is recorded: two start commands of one application are recorded (their
        # arrival order) and compared with the newest one known one after the other
        await lock_application(unit, msg.application_id)
        newest = await store.newest_number(unit.session, msg.application_id)
        seq = await store.insert_deployment(
            unit.session, r, self.sealer.seal(spec), build_id, abandon_volume_data=abandon, number=msg.number
        )
        if seq is None:
            log.info("deployment already known", deployment_id=msg.deployment_id)
            return
        await build_records.insert_builds(
            unit.session, msg.deployment_id, builds.planned(spec, r.deployment_id, build_id)
        )
        superseded = queueing.superseded(msg.number, newest)
        if superseded is not None:  # a newer deployment came first: this one never replaces it
            await apply(unit, self.sealer, msg.deployment_id, machine.Cancel(superseded), now)
            return
        refusal = removal.start_refusal(await removals.load(unit.session, msg.application_id)) or refusal
        if refusal is not None:  # ends failed at once, as a deployment that cannot start
            await apply(unit, self.sealer, msg.deployment_id, machine.Fail(refusal), now)
            return
        me = queueing.QueueEntry(msg.deployment_id, State.QUEUED, seq)
        entries = await store.queue_of(unit.session, msg.application_id)
        if msg.options.when_busy == "replace_queued":
            for old in queueing.replaced_by(me, entries):
                cancel = machine.Cancel(f"replaced by {msg.deployment_id}")
                await apply(unit, self.sealer, old.deployment_id, cancel, now)
            entries = await store.queue_of(unit.session, msg.application_id)
        ahead = queueing.position(me, entries)
        detail = f"{ahead} deployment(s) of this application ahead" if ahead else "next to run"
        progressed = DeploymentProgressed(
            deployment_id=r.deployment_id, application_id=r.application_id, state="queued", step="queued", detail=detail
        )
        await emit_events(unit, r.deployment_id, "v0", [progressed], [])
        if self.admit_at_start and not ahead:  # the application is free: it starts in this transaction
            await admit_next(unit, self.sealer, msg.application_id, now, entries)

    async def cancel(self, msg: CancelDeployment, unit: Unit) -> None:
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

    async def build_succeeded(self, msg: BuildSucceeded, unit: Unit) -> None:
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is not None and await self.answer(unit, row, msg.build_id, builds.Succeeded(msg.image, msg.pushed_ref)):
            return
        if row is None or row.build_id != msg.build_id:
            log.info("build result for no deployment of ours", deployment_id=msg.deployment_id, build_id=msg.build_id)
            return
        detail = " (reused an image built from the same commit)" if msg.reused else ""
        try:
            await apply(
                unit, self.sealer, msg.deployment_id, machine.BuildSucceeded(msg.image, msg.pushed_ref), time.time()
            )
        except RefusedError as exc:
            log.info("late build result ignored", deployment_id=msg.deployment_id, detail=str(exc) + detail)

    async def build_failed(self, msg: BuildFailed, unit: Unit) -> None:
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is None:
            return
        reason = names.redact(f"{msg.stage}: {msg.reason}", secrets_of(self.sealer, row))
        if await self.answer(unit, row, msg.build_id, builds.Failed(reason)) or row.build_id != msg.build_id:
            return
        try:
            await apply(unit, self.sealer, msg.deployment_id, machine.BuildFailed(reason), time.time())
        except RefusedError as exc:
            log.info("late build failure ignored", deployment_id=msg.deployment_id, detail=str(exc))

    async def build_cancelled(self, msg: BuildCancelled, unit: Unit) -> None:
        """The builder stopped a build this scheduler asked it to stop: nothing left to change (the deployment
        was cancelled or failed when the cancel was sent); recorded for the logs. A build of a compose
        service stopped while its deployment still waits fails the deployment (``answer``)."""
        row = await store.load(unit.session, msg.deployment_id, lock=True)
        if row is not None:
            await self.answer(unit, row, msg.build_id, builds.Stopped(msg.reason))
        log.info("build stopped", deployment_id=msg.deployment_id, build_id=msg.build_id, seconds=msg.duration_s)

    async def answer(self, unit: Unit, row: Any, build_id: str, answer: builds.Answer) -> bool:
        """Record a builder's answer to one build of a deployment with several (``domain/builds.py``); False
        when the deployment has a single build. Once every build succeeded, the snapshot's built services run
        their images and the deployment starts; the first failed one fails it, and the others are cancelled."""
        recorded = await build_records.builds_of(unit.session, row.id, lock=True)
        found = next((b for b in recorded if b.build_id == build_id), None)
        if found is None:
            return bool(recorded)
        new = builds.answered(found, answer)
        if new is None:
            log.info("build answer already recorded", deployment_id=row.id, build_id=build_id)
            return True
        await build_records.save_build(unit.session, row.id, new)
        r, now = store.rollout_of(row), time.time()
        others = [b for b in recorded if b.build_id != build_id]
        for later in builds.extended(others, now, r.timeouts.build_s + machine.BUILD_ANSWER_MARGIN_S):
            await build_records.save_build(unit.session, row.id, later)  # it may have waited for this one's slot
        outcome = builds.outcome([new if b.build_id == build_id else b for b in recorded])
        if r.state != State.BUILDING or r.abort is not None:
            log.info("late build answer recorded", deployment_id=row.id, build_id=build_id, state=r.state.value)
            return True
        try:
            match outcome:
                case builds.Waiting(pending):
                    await self._build_progress(unit, r, new, pending)
                case builds.OneFailed(reason, cancel):
                    await apply(unit, self.sealer, row.id, machine.BuildFailed(reason), now)
                    await cancel_builds(unit, row.id, list(cancel), reason)
                case builds.AllBuilt(app_image, app_pushed, images):
                    spec = builds.built_spec(self.sealer.open(row.spec), images)
                    await build_records.set_spec(unit.session, row.id, self.sealer.seal(spec))
                    detail = ", ".join(f"{svc}: {image}" for svc, image, _ in images)
                    inp = machine.BuildSucceeded(app_image, app_pushed, f"images built ({detail})")
                    await apply(unit, self.sealer, row.id, inp, now)
        except RefusedError as exc:
            log.info("late build answer ignored", deployment_id=row.id, detail=str(exc))
        return True

    async def _build_progress(self, unit: Unit, r: Rollout, build: builds.Build, pending: tuple[str, ...]) -> None:
        """A progress line for one build of several that ended while others still run."""
        waiting = ", ".join(f"service {p}" if p else "the application's image" for p in pending)
        done = f"image {build.image}" if build.state == "succeeded" else build.reason
        progressed = DeploymentProgressed(
            deployment_id=r.deployment_id,
            application_id=r.application_id,
            state=r.state.value,
            step="build succeeded",
            detail=f"{build.label}: {done}; waiting for {waiting}",
        )
        await emit_events(unit, r.deployment_id, f"build-{build.build_id}", [progressed], [])

    async def route_applied(self, msg: RoutesApplied, unit: Unit) -> None:
        reason = None if msg.live else "the change was written but Traefik does not show it live"
        await store.settle_op(unit.session, msg.route_id, msg.generation, msg.live, reason, msg.server_id)

    async def route_removed(self, msg: RouteRemoved, unit: Unit) -> None:
        await store.settle_op(unit.session, msg.route_id, msg.generation, True, None, msg.server_id)

    async def route_failed(self, msg: RouteFailed, unit: Unit) -> None:
        await store.settle_op(unit.session, msg.route_id, msg.generation, False, msg.reason, msg.server_id)
