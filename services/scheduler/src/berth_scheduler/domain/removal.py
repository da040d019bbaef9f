"""Taking an application down: the removal's persisted phases, pure transitions and what it removes.

cancelling -> routes -> draining -> stopping -> images -> removed, or routes -> restoring -> failed when
proxy-sync refuses a route removal or does not confirm it in time (the routes already removed are put
back; a new command starts the removal again as a new attempt). ``cancelling`` waits until the
application has no unfinished deployment: queued ones and one not yet past its switch were cancelled by
the command's handler, one past its switch finishes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from berth_common.catalogue import ApplicationRemovalFailed, ApplicationRemovalProgressed, ApplicationRemoved, Event
from berth_common.records import record_of
from berth_scheduler.domain.retention import BuiltImage
from berth_scheduler.domain.routing import RouteOp, RoutePlan, RouteTarget

BEING_REMOVED = "the application is being removed"
REMOVED = "the application was removed"


class Phase(StrEnum):
    CANCELLING = "cancelling"
    ROUTES = "routes"
    RESTORING = "restoring"
    DRAINING = "draining"
    STOPPING = "stopping"
    IMAGES = "images"
    REMOVED = "removed"
    FAILED = "failed"


FINISHED = frozenset({Phase.REMOVED, Phase.FAILED})


class RemovalRefusedError(Exception):
    """The input does not apply to the removal in its phase (nothing changed)."""


@dataclass(frozen=True)
class Removal:
    application_id: str
    team_id: str
    phase: Phase
    drain_grace_s: float
    requested_at: float
    attempt: int = 1
    plan: RoutePlan | None = None
    deadline_at: float | None = None
    drain_until: float | None = None
    containers: tuple[str, ...] = ()  # every container found to stop (kept across a restart, for the count)
    images: tuple[str, ...] = ()  # every tag found to remove
    routes_removed: int = 0
    containers_removed: int = 0
    images_removed: int = 0
    delete_volumes: bool = False  # the command asked to delete the application's named volumes too
    volumes_removed: int = 0
    reason: str | None = None
    finished_at: float | None = None
    version: int = 0

    @property
    def active(self) -> bool:
        return self.phase not in FINISHED

    @property
    def deployment_id(self) -> str:
        """The key of this attempt's route commands (``route_ops.deployment_id``)."""
        return removal_key(self.application_id, self.attempt)


def removal_key(application_id: str, attempt: int) -> str:
    return f"removal-{hashlib.sha256(application_id.encode()).hexdigest()[:24]}-{attempt}"


def start_refusal(r: Removal | None) -> str | None:
    """Why a new deployment of the application cannot start (None: it can)."""
    if r is None or r.phase == Phase.FAILED:
        return None
    return REMOVED if r.phase == Phase.REMOVED else BEING_REMOVED


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutesPlanned:
    """No deployment of the application is unfinished; these are its routes as proxy-sync confirmed them."""

    routes: tuple[RouteTarget, ...]
    route_timeout_s: float


@dataclass(frozen=True)
class RoutesRemoved:
    pass


@dataclass(frozen=True)
class RoutesRefused:
    reason: str
    route_timeout_s: float  # for putting back the routes already removed


@dataclass(frozen=True)
class Restored:
    note: str


@dataclass(frozen=True)
class Drained:
    pass


@dataclass(frozen=True)
class ContainersFound:
    names: tuple[str, ...]


@dataclass(frozen=True)
class ContainersRemoved:
    pass


@dataclass(frozen=True)
class ImagesFound:
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ImagesRemoved:
    kept: tuple[str, ...] = ()  # tags the engine refused to remove (in use)
    volumes_removed: int = 0  # named volumes deleted (only when the removal asked for it)


Input = (
    RoutesPlanned
    | RoutesRemoved
    | RoutesRefused
    | Restored
    | Drained
    | ContainersFound
    | ContainersRemoved
    | ImagesFound
    | ImagesRemoved
)


# --- transitions -----------------------------------------------------------------------------------


def requested(
    application_id: str,
    team_id: str,
    drain_grace_s: float,
    now: float,
    previous: Removal | None = None,
    delete_volumes: bool = False,
) -> Removal:
    """A new removal (or a new attempt after a failed one); ``delete_volumes``: its named volumes go too."""
    attempt = previous.attempt + 1 if previous is not None else 1
    version = previous.version + 1 if previous is not None else 0
    return Removal(
        application_id,
        team_id,
        Phase.CANCELLING,
        drain_grace_s,
        now,
        attempt=attempt,
        version=version,
        delete_volumes=delete_volumes,
    )


def removed_event(r: Removal, now: float | None = None) -> ApplicationRemoved:
    end = r.finished_at if now is None else now
    return record_of(ApplicationRemoved, r, duration_s=round(max(0.0, (end or r.requested_at) - r.requested_at), 3))


def never_seen(application_id: str, team_id: str, now: float, previous: Removal | None = None) -> tuple[Removal, Event]:
    """An application the scheduler has no deployment or route of: removed at once, nothing counted."""
    r = replace(requested(application_id, team_id, 0.0, now, previous), phase=Phase.REMOVED, finished_at=now, version=1)
    return r, removed_event(r)


def route_plan(routes: Iterable[RouteTarget]) -> RoutePlan:
    """One step that removes every route the application has routed (none: no step)."""
    before = tuple(sorted((t for t in routes if t.upstreams), key=lambda t: (t.route_id, t.server_id)))
    ops = tuple(RouteOp("remove", t.route_id, server_id=t.server_id) for t in before)
    return RoutePlan(before=before, steps=(ops,) if ops else ())


def _expect(r: Removal, inp: Input, *phases: Phase) -> None:
    if r.phase not in phases:
        raise RemovalRefusedError(f"{type(inp).__name__} does not apply to a removal that is {r.phase.value}")


def _go(r: Removal, phase: Phase, **changes: object) -> Removal:
    return replace(r, phase=phase, version=r.version + 1, **changes)  # type: ignore[arg-type]


def progressed_event(r: Removal) -> ApplicationRemovalProgressed:
    return record_of(ApplicationRemovalProgressed, r, phase=r.phase.value)


def transition(r: Removal, inp: Input, now: float) -> tuple[Removal, list[Event]]:
    """Apply ``inp`` to ``r``; raise :class:`RemovalRefusedError` when it does not apply. Entering a phase
    that is not the end is reported by ``evt.application.removal_progressed``."""
    nxt, events = _transition(r, inp, now)
    if nxt.phase != r.phase and nxt.active:
        return nxt, [progressed_event(nxt), *events]
    return nxt, events


def _transition(r: Removal, inp: Input, now: float) -> tuple[Removal, list[Event]]:
    match inp:
        case RoutesPlanned(routes, route_timeout_s):
            _expect(r, inp, Phase.CANCELLING)
            plan = route_plan(routes)
            if not plan.steps:  # nothing routed: nothing to drain either
                return _go(r, Phase.DRAINING, plan=plan, drain_until=now), []
            return _go(r, Phase.ROUTES, plan=plan, deadline_at=now + route_timeout_s), []
        case RoutesRemoved():
            _expect(r, inp, Phase.ROUTES)
            assert r.plan is not None
            removed = len(r.plan.steps[0]) if r.plan.steps else 0
            until = now + r.drain_grace_s
            return _go(r, Phase.DRAINING, deadline_at=None, drain_until=until, routes_removed=removed), []
        case RoutesRefused(reason, route_timeout_s):
            _expect(r, inp, Phase.ROUTES)
            return _go(r, Phase.RESTORING, deadline_at=now + route_timeout_s, reason=reason), []
        case Restored(note):
            _expect(r, inp, Phase.RESTORING)
            reason = (r.reason or "the routes could not be removed") + (f" ({note})" if note else "")
            done = _go(r, Phase.FAILED, deadline_at=None, reason=reason[:4000], finished_at=now)
            event = ApplicationRemovalFailed(application_id=r.application_id, team_id=r.team_id, reason=reason[:4000])
            return done, [event]
        case Drained():
            _expect(r, inp, Phase.DRAINING)
            return _go(r, Phase.STOPPING, drain_until=None), []
        case ContainersFound(names):
            _expect(r, inp, Phase.STOPPING)
            merged = tuple(sorted({*r.containers, *names}))
            return replace(r, containers=merged, version=r.version + 1), []
        case ContainersRemoved():
            _expect(r, inp, Phase.STOPPING)
            return _go(r, Phase.IMAGES, containers_removed=len(r.containers)), []
        case ImagesFound(tags):
            _expect(r, inp, Phase.IMAGES)
            merged = tuple(sorted({*r.images, *tags}))
            return replace(r, images=merged, version=r.version + 1), []
        case ImagesRemoved(kept, volumes_removed):
            _expect(r, inp, Phase.IMAGES)
            count = len([t for t in r.images if t not in set(kept)])
            done = _go(r, Phase.REMOVED, images_removed=count, volumes_removed=volumes_removed, finished_at=now)
            return done, [removed_event(done)]
    raise RemovalRefusedError(f"unknown input {inp!r}")


# --- what is removed -------------------------------------------------------------------------------


def repositories(app_names: Iterable[str]) -> set[str]:
    """The image repositories the builder tagged the application's builds in (one per name it had)."""
    return {f"berth/{n}" for n in app_names if n}


def images_to_remove(
    labelled: Iterable[BuiltImage], built: Iterable[str], present: Iterable[str], repos: set[str]
) -> list[str]:
    """The tags to remove, in a stable order: those of the images the builder labelled as built for the
    application, and the images its deployments recorded as built (``built``) that are still on the server
    (``present``), in the application's repositories only (a tag another application's build put on a
    reused image, or a prebuilt image the user named, is never touched)."""

    def ours(tag: str) -> bool:
        return tag.rsplit(":", 1)[0] in repos and ":" in tag

    found = {t for img in labelled for t in img.tags if ours(t)}
    here = set(present)
    found |= {t for t in built if ours(t) and t in here}
    return sorted(found)
