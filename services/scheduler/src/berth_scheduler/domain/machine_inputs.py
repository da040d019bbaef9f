"""The inputs of the deployment state machine (``domain/machine.py``): what happened to a deployment, as the
orchestrator and the bus report it. Pure data; ``Input`` is any of them."""

from __future__ import annotations

from dataclasses import dataclass

from berth_common.catalogue import Replica
from berth_scheduler.domain.routing import RoutePlan


@dataclass(frozen=True)
class Admit:
    """The application has no other deployment running: this one starts."""

    previous_deployment_id: str | None = None


@dataclass(frozen=True)
class BuildSucceeded:
    image: str  # "": no service runs the application's own image (each built or named its own)
    pushed_ref: str | None = None  # the image in the team's push registry, by digest
    detail: str = ""  # what was built, when not only the application's image


@dataclass(frozen=True)
class BuildFailed:
    reason: str


@dataclass(frozen=True)
class ImageReady:
    """The prebuilt image is on the server (pulled, or there already): ``digest`` ("" when it has none);
    the readiness deadline starts now, not before a long pull."""

    digest: str
    detail: str = ""


@dataclass(frozen=True)
class OldStoppedForRecreate:
    """``strategy: recreate``: the old replicas of ``services`` left the routes and stopped before the new
    ones start (progress only: the gap until the new version is routed is expected downtime)."""

    services: tuple[str, ...]
    stopped: int
    routes_removed: int
    why: str = "strategy recreate"  # or the volume data moving with them (``VolumeMoved``)


@dataclass(frozen=True)
class VolumeMoved:
    """The data of ``volume`` was copied from server ``source`` to server ``target`` (the old replicas stopped
    first: ``OldStoppedForRecreate``); the readiness deadline starts now, not before a long copy. ``kept``: what
    the deployment says of the volume left on the source."""

    volume: str
    source: str
    target: str
    size_bytes: int
    seconds: float
    kept: str = ""


@dataclass(frozen=True)
class PreDeploySucceeded:
    """The application's pre-deploy job exited 0 (``usecases/rollout/pre_deploy.py``): the readiness
    deadline starts now, not before a long job."""

    detail: str = ""


@dataclass(frozen=True)
class ContainersStarted:
    count: int


@dataclass(frozen=True)
class ReplicaReady:
    """One replica passed its readiness check (progress only)."""

    container: str


@dataclass(frozen=True)
class ReplicasReady:
    plan: RoutePlan


@dataclass(frozen=True)
class RouteStepConfirmed:
    step: int  # the index of the confirmed step in the plan


@dataclass(frozen=True)
class Drained:
    pass


@dataclass(frozen=True)
class OldStopped:
    stopped: int
    replicas: tuple[Replica, ...]


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Cancel:
    reason: str = "cancelled by user"


@dataclass(frozen=True)
class Compensated:
    detail: str = ""


Input = (
    Admit
    | BuildSucceeded
    | BuildFailed
    | ImageReady
    | OldStoppedForRecreate
    | VolumeMoved
    | PreDeploySucceeded
    | ContainersStarted
    | ReplicaReady
    | ReplicasReady
    | RouteStepConfirmed
    | Drained
    | OldStopped
    | Fail
    | Cancel
    | Compensated
)
