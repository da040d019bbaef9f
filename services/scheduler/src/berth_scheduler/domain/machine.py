"""The deployment state machine: pure transitions that return the new state and the events to emit.

queued -> building -> starting -> verifying -> routing -> draining -> stopping_old -> succeeded, and from
any state before the switch to the new version (queued .. routing) to failed or cancelled. Failing or
cancelling a deployment that has started something is two transitions: ``Abort`` records the outcome and
reason (the state stays, so a restart knows what to undo), the orchestrator removes the new containers
and restores the routes, then ``Compensated`` ends it. Once the old version is out of the routes
(draining, stopping_old) the deployment can only go forward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from berth_common.catalogue import (
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
    Event,
)
from berth_scheduler.domain.machine_inputs import Admit as Admit
from berth_scheduler.domain.machine_inputs import BuildFailed as BuildFailed
from berth_scheduler.domain.machine_inputs import BuildSucceeded as BuildSucceeded
from berth_scheduler.domain.machine_inputs import Cancel as Cancel
from berth_scheduler.domain.machine_inputs import Compensated as Compensated
from berth_scheduler.domain.machine_inputs import ContainersStarted as ContainersStarted
from berth_scheduler.domain.machine_inputs import Drained as Drained
from berth_scheduler.domain.machine_inputs import Fail as Fail
from berth_scheduler.domain.machine_inputs import ImageReady as ImageReady
from berth_scheduler.domain.machine_inputs import Input as Input
from berth_scheduler.domain.machine_inputs import OldStopped as OldStopped
from berth_scheduler.domain.machine_inputs import OldStoppedForRecreate as OldStoppedForRecreate
from berth_scheduler.domain.machine_inputs import PreDeploySucceeded as PreDeploySucceeded
from berth_scheduler.domain.machine_inputs import ReplicaReady as ReplicaReady
from berth_scheduler.domain.machine_inputs import ReplicasReady as ReplicasReady
from berth_scheduler.domain.machine_inputs import RouteStepConfirmed as RouteStepConfirmed
from berth_scheduler.domain.machine_inputs import VolumeMoved as VolumeMoved
from berth_scheduler.domain.routing import RoutePlan


class State(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    STARTING = "starting"
    VERIFYING = "verifying"
    ROUTING = "routing"
    DRAINING = "draining"
    STOPPING_OLD = "stopping_old"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
# Before the old version leaves the routes: a failure or a cancel can still put everything back.
REVERSIBLE = frozenset({State.QUEUED, State.BUILDING, State.STARTING, State.VERIFYING, State.ROUTING})
# The builder stops itself at the build timeout; its failure event gets this long to arrive.
BUILD_ANSWER_MARGIN_S = 30.0


class RefusedError(Exception):
    """The input does not apply to the deployment in its current state (nothing changed)."""


@dataclass(frozen=True)
class Timeouts:
    build_s: float
    readiness_s: float
    route_s: float
    drain_grace_s: float


@dataclass(frozen=True)
class Abort:
    outcome: Literal["failed", "cancelled"]
    reason: str
    in_state: State


@dataclass(frozen=True)
class Rollout:
    deployment_id: str
    application_id: str
    team_id: str
    state: State
    needs_build: bool
    timeouts: Timeouts
    created_at: float
    image: str | None = None
    # A prebuilt image's ``repo@sha256:...`` once it was pulled or found ("": found, no registry digest);
    # None: not looked at yet (a built image never is)
    image_digest: str | None = None
    # A built image the builder pushed to the team's push registry (``<repo>@sha256:...``): every server
    # pulls and runs exactly that; None: the image is on the build server only (streamed to the others)
    pushed_ref: str | None = None
    previous_deployment_id: str | None = None
    abort: Abort | None = None
    plan: RoutePlan | None = None
    route_step: int = 0
    deadline_at: float | None = None
    drain_until: float | None = None
    finished_at: float | None = None
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def run_image(self) -> str:
        """The image the replicas run: a pushed build by its digest in the push registry (the same image on
        every server), else the image as built or named."""
        return self.pushed_ref or self.image or ""

    @property
    def compensating(self) -> bool:
        return self.abort is not None and not self.terminal


# --- inputs ----------------------------------------------------------------------------------------


# --- transitions -----------------------------------------------------------------------------------


def _progress(r: Rollout, step: str, detail: str = "", image_digest: str | None = None) -> DeploymentProgressed:
    return DeploymentProgressed(
        deployment_id=r.deployment_id,
        application_id=r.application_id,
        state=r.state.value,
        step=step,
        detail=detail[:4000],
        image_digest=image_digest,
    )


def _expect(r: Rollout, inp: Input, *states: State) -> None:
    if r.state not in states or r.abort is not None:
        got = f"{r.state.value} (aborting)" if r.abort is not None else r.state.value
        raise RefusedError(f"{type(inp).__name__} does not apply to a deployment that is {got}")


def _go(r: Rollout, state: State, now: float, **changes: object) -> Rollout:
    return replace(r, state=state, version=r.version + 1, **changes)  # type: ignore[arg-type]


def _abort(r: Rollout, outcome: Literal["failed", "cancelled"], reason: str, now: float) -> tuple[Rollout, list[Event]]:
    if r.state == State.QUEUED:  # nothing was started: end at once
        return _finish(replace(r, abort=Abort(outcome, reason, r.state)), now, "")
    nxt = replace(r, abort=Abort(outcome, reason, r.state), version=r.version + 1)
    verb = "failing" if outcome == "failed" else "cancelling"
    return nxt, [_progress(nxt, verb, f"{reason}; removing the new containers, routes stay as before")]


def _finish(r: Rollout, now: float, detail: str) -> tuple[Rollout, list[Event]]:
    assert r.abort is not None
    state = State.FAILED if r.abort.outcome == "failed" else State.CANCELLED
    done = replace(r, state=state, finished_at=now, deadline_at=None, version=r.version + 1)
    duration = max(0.0, now - r.created_at)
    events: list[Event] = [_progress(done, state.value, detail or r.abort.reason)]
    if state == State.FAILED:
        events.append(
            DeploymentFailed(
                deployment_id=r.deployment_id,
                application_id=r.application_id,
                team_id=r.team_id,
                reason=r.abort.reason[:4000],
                failed_in=r.abort.in_state.value,
                duration_s=round(duration, 3),
            )
        )
    else:
        events.append(
            DeploymentCancelled(
                deployment_id=r.deployment_id,
                application_id=r.application_id,
                team_id=r.team_id,
                reason=r.abort.reason[:500],
                cancelled_in=r.abort.in_state.value,
            )
        )
    return done, events


def transition(r: Rollout, inp: Input, now: float) -> tuple[Rollout, list[Event]]:
    """Apply ``inp`` to ``r``; raise :class:`RefusedError` when it does not apply."""
    if r.terminal:
        raise RefusedError(f"the deployment already {r.state.value}")
    t = r.timeouts
    match inp:
        case Admit(previous):
            _expect(r, inp, State.QUEUED)
            if r.needs_build:
                nxt = _go(
                    r,
                    State.BUILDING,
                    now,
                    previous_deployment_id=previous,
                    deadline_at=now + t.build_s + BUILD_ANSWER_MARGIN_S,
                )
                return nxt, [_progress(nxt, "build requested")]
            nxt = _go(r, State.STARTING, now, previous_deployment_id=previous, deadline_at=now + t.readiness_s)
            detail = f"image {r.image}" if r.image else "each service runs an image of its own"
            return nxt, [_progress(nxt, "starting replicas", detail)]
        case BuildSucceeded(image, pushed_ref, built):
            _expect(r, inp, State.BUILDING)
            nxt = _go(r, State.STARTING, now, image=image, pushed_ref=pushed_ref, deadline_at=now + t.readiness_s)
            detail = (f"image {image}" if image else "") + (f", pushed as {pushed_ref}" if pushed_ref else "")
            detail = "; ".join(d for d in (detail, built) if d)
            return nxt, [_progress(nxt, "build succeeded", detail, image_digest=pushed_ref)]
        case BuildFailed(reason):
            _expect(r, inp, State.BUILDING)
            return _abort(r, "failed", f"build failed: {reason}", now)
        case ImageReady(digest, detail):
            _expect(r, inp, State.STARTING)
            if r.image_digest is not None:
                raise RefusedError("the image was already made ready")
            nxt = replace(r, image_digest=digest, deadline_at=now + t.readiness_s, version=r.version + 1)
            return nxt, [_progress(nxt, "image ready", detail, image_digest=digest or None)]
        case OldStoppedForRecreate(services, stopped, routes_removed, why):
            _expect(r, inp, State.STARTING)
            nxt = replace(r, version=r.version + 1)
            detail = (
                f"{why}: the old replica(s) of {', '.join(services)} left {routes_removed} route(s) and "
                f"{stopped} stopped before the new ones start; expected downtime until the new version is routed"
            )
            return nxt, [_progress(nxt, "expected downtime", detail)]
        case VolumeMoved(volume, source, target, size, seconds, kept):
            _expect(r, inp, State.STARTING)
            nxt = replace(r, deadline_at=now + t.readiness_s, version=r.version + 1)
            detail = f"volume {volume}: {size} bytes copied from server {source} to server {target} in {seconds:.2f}s"
            return nxt, [_progress(nxt, "volume data moved", "; ".join(d for d in (detail, kept) if d))]
        case PreDeploySucceeded(detail):
            _expect(r, inp, State.STARTING)
            nxt = replace(r, deadline_at=now + t.readiness_s, version=r.version + 1)
            return nxt, [_progress(nxt, "pre-deploy job succeeded", detail)]
        case ContainersStarted(count):
            _expect(r, inp, State.STARTING)
            nxt = _go(r, State.VERIFYING, now)
            return nxt, [_progress(nxt, "replicas started", f"{count} container(s) started, checking readiness")]
        case ReplicaReady(container):
            _expect(r, inp, State.VERIFYING)
            nxt = replace(r, version=r.version + 1)
            return nxt, [_progress(nxt, "replica ready", container)]
        case ReplicasReady(plan):
            _expect(r, inp, State.VERIFYING)
            nxt = _go(r, State.ROUTING, now, plan=plan, route_step=0, deadline_at=now + t.route_s)
            return nxt, [_progress(nxt, "replicas ready", f"{len(plan.steps)} route step(s)")]
        case RouteStepConfirmed(step):
            _expect(r, inp, State.ROUTING)
            assert r.plan is not None
            if step != r.route_step:
                raise RefusedError(f"route step {step} confirmed while step {r.route_step} is pending")
            if step + 1 < len(r.plan.steps):
                nxt = replace(r, route_step=step + 1, deadline_at=now + t.route_s, version=r.version + 1)
                return nxt, [_progress(nxt, "route step live", f"step {step + 1} of {len(r.plan.steps)}")]
            grace = t.drain_grace_s if r.plan.has_old_upstreams else 0.0
            nxt = _go(r, State.DRAINING, now, route_step=step + 1, deadline_at=None, drain_until=now + grace)
            return nxt, [_progress(nxt, "new version live", f"draining the old version for {grace:g}s")]
        case Drained():
            _expect(r, inp, State.DRAINING)
            nxt = _go(r, State.STOPPING_OLD, now, drain_until=None)
            return nxt, [_progress(nxt, "drained", "stopping the old containers")]
        case OldStopped(stopped, replicas):
            _expect(r, inp, State.STOPPING_OLD)
            nxt = _go(r, State.SUCCEEDED, now, finished_at=now)
            return nxt, [
                _progress(nxt, "succeeded", f"{stopped} old container(s) stopped"),
                DeploymentSucceeded(
                    deployment_id=r.deployment_id,
                    application_id=r.application_id,
                    team_id=r.team_id,
                    image=r.image or "",
                    image_digest=r.image_digest or r.pushed_ref or None,
                    previous_deployment_id=r.previous_deployment_id,
                    duration_s=round(max(0.0, now - r.created_at), 3),
                    replicas=list(replicas),
                ),
            ]
        case Fail(reason):
            if r.abort is not None:
                raise RefusedError("the deployment is already being undone")
            if r.state not in REVERSIBLE:
                raise RefusedError(f"a deployment that is {r.state.value} serves traffic and cannot fail")
            return _abort(r, "failed", reason, now)
        case Cancel(reason):
            if r.abort is not None:
                raise RefusedError("the deployment is already being undone")
            if r.state not in REVERSIBLE:
                raise RefusedError(f"too late to cancel: the new version already serves all traffic ({r.state.value})")
            return _abort(r, "cancelled", reason, now)
        case Compensated(detail):
            if r.abort is None:
                raise RefusedError("nothing to undo")
            return _finish(r, now, detail)
    raise RefusedError(f"unknown input {inp!r}")
