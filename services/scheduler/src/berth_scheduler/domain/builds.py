"""The builds of a compose deployment whose services build their own images: which builds it asks for,
their commands, how their answers add up, and the snapshot the services then run. Pure.

A deployment whose spec has a service with ``build`` asks the builder once per such service (its own
``build_id``, derived from the deployment and the service so a repeated plan gives the same ids, and its
own tag ``berth/<app>-<service>:<deployment short>``), plus once for the application's own image when a
service runs it (``service`` ""). Each build is recorded (``deployment_builds``) as ``pending`` until its
answer; an answer changes a pending build only, so a redelivered one does nothing. The deployment waits
for every build; the first failed (or stopped) one fails it, naming the service, and the others still
pending are cancelled. Once all succeeded, each built service runs its tag (or the pushed reference in the
team's push registry, pulled with its credentials).

Each build has a deadline of its own (``deadline_at``): the build timeout (plus the time its answer takes
to arrive) from when it was asked for, pushed back by the same budget each time another build of the
deployment ends (the builder runs a few builds at once: one waiting for a slot starts when another ends).
A build past its deadline fails the deployment naming its service; the others are not held to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Literal

from berth_common.catalogue import ApplicationSpec, GitSource, ImageSource, StartBuild
from berth_scheduler.domain import names

APP = ""  # the service of the application's own build
BUILD_NAMESPACE = uuid.UUID("6f1c1f9e-8d1b-4c55-9a57-0d7c3b1e2a40")
BuildState = Literal["pending", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class Build:
    """One build of a deployment: ``service`` "" is the application's own image."""

    service: str
    build_id: str
    image_tag: str
    state: BuildState = "pending"
    image: str | None = None
    pushed_ref: str | None = None
    reason: str = ""
    deadline_at: float | None = None  # its own deadline (epoch seconds) once asked for; None: not asked yet

    @property
    def label(self) -> str:
        return f"service {self.service}" if self.service else "the application's image"


def has_service_builds(spec: ApplicationSpec) -> bool:
    return any(svc.build is not None for svc in spec.services)


def runs_app_image(spec: ApplicationSpec) -> bool:
    """A service runs the application's own image (neither an image nor a build of its own)."""
    return any(svc.image is None and svc.build is None for svc in spec.services)


def service_build_id(deployment_id: str, service: str) -> str:
    """The build id of ``service``'s build for this deployment (the same every time it is planned)."""
    return uuid.uuid5(BUILD_NAMESPACE, f"{deployment_id}/{service}").hex


def service_tag(app: str, service: str, deployment_id: str) -> str:
    """``berth/<app>-<service>:<deployment short>``: the tag a service's build for this deployment makes."""
    names.check_slug(app, "application name")
    names.check_slug(service, "service name")
    return f"berth/{app}-{service}:{names.short_id(deployment_id)}"


def planned(spec: ApplicationSpec, deployment_id: str, app_build_id: str | None) -> list[Build]:
    """The builds of the deployment: the application's own first (when ``app_build_id``), then one per
    service with a build, in the spec's order. Empty for a spec without service builds (its single build,
    if any, is the deployment's ``build_id``, as for every application)."""
    if not has_service_builds(spec):
        return []
    out = [Build(APP, app_build_id, names.image_tag(spec.name, deployment_id))] if app_build_id else []
    out += [
        Build(svc.name, service_build_id(deployment_id, svc.name), service_tag(spec.name, svc.name, deployment_id))
        for svc in spec.services
        if svc.build is not None
    ]
    return out


def start_command(
    spec: ApplicationSpec, build: Build, deployment_id: str, application_id: str, timeout_s: float, team_id: str = ""
) -> StartBuild:
    """``cmd.build.start`` of one build: the application's git source, with the service's context,
    Dockerfile and build args for a service's build."""
    source = spec.source
    assert isinstance(source, GitSource)
    service = None
    if build.service:
        svc = next(s for s in spec.services if s.name == build.service)
        assert svc.build is not None
        update = {
            "subdirectory": svc.build.subdirectory,
            "dockerfile": svc.build.dockerfile,
            "build_args": list(svc.build.build_args),
        }
        source, service = source.model_copy(update=update), build.service
    return StartBuild(
        build_id=build.build_id,
        deployment_id=deployment_id,
        application_id=application_id,
        source=source,
        image_tag=build.image_tag,
        timeout_s=min(timeout_s, 6 * 3600),
        service=service,
        team_id=team_id,
    )


# --- answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Succeeded:
    image: str
    pushed_ref: str | None = None


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Stopped:
    reason: str


Answer = Succeeded | Failed | Stopped


@dataclass(frozen=True)
class Waiting:
    pending: tuple[str, ...]  # the services still building ("": the application's image)


@dataclass(frozen=True)
class AllBuilt:
    app_image: str  # "": no service runs the application's own image
    app_pushed_ref: str | None
    images: tuple[tuple[str, str, str | None], ...]  # (service, image, pushed_ref)


@dataclass(frozen=True)
class OneFailed:
    reason: str  # names the service
    cancel: tuple[str, ...]  # build ids still pending, to cancel


Outcome = Waiting | AllBuilt | OneFailed


def answered(build: Build, answer: Answer) -> Build | None:
    """The build with its answer; None when it is not pending any more (a redelivered or late answer)."""
    if build.state != "pending":
        return None
    match answer:
        case Succeeded(image, pushed_ref):
            return replace(build, state="succeeded", image=image, pushed_ref=pushed_ref)
        case Failed(reason):
            return replace(build, state="failed", reason=reason)
        case Stopped(reason):
            return replace(build, state="cancelled", reason=reason or "stopped by the builder")
    raise ValueError(f"unknown answer {answer!r}")


def outcome(builds: list[Build]) -> Outcome:
    """Where the deployment's builds stand: the first failed one (in plan order; else the first stopped
    one) fails it, every one succeeded lets it start, else it waits."""
    pending = tuple(b.build_id for b in builds if b.state == "pending")
    failed = [b for b in builds if b.state == "failed"] + [b for b in builds if b.state == "cancelled"]
    broken = failed[0] if failed else None  # a failure before a stop (the others are stopped after it)
    if broken is not None:
        verb = "failed" if broken.state == "failed" else "was stopped"
        return OneFailed(f"the build of {broken.label} {verb}: {broken.reason}", pending)
    if pending:
        return Waiting(tuple(b.service for b in builds if b.state == "pending"))
    app = next((b for b in builds if b.service == APP), None)
    return AllBuilt(
        app.image or "" if app else "",
        app.pushed_ref if app else None,
        tuple((b.service, b.image or b.image_tag, b.pushed_ref) for b in builds if b.service != APP),
    )


def built_spec(spec: ApplicationSpec, images: tuple[tuple[str, str, str | None], ...]) -> ApplicationSpec:
    """``spec`` with each built service running its image instead of its build: the tag on the build
    server (Berth's own, never pulled), or the pushed reference, pulled with the push registry's
    credentials."""
    push = spec.source.push if isinstance(spec.source, GitSource) else None
    by_service = {service: (image, pushed) for service, image, pushed in images}
    services = []
    for svc in spec.services:
        if svc.name not in by_service or svc.build is None:
            services.append(svc)
            continue
        image, pushed = by_service[svc.name]
        own = (
            ImageSource(image=pushed, pull_policy="if-missing", auth=push.auth if push is not None else None)
            if pushed
            else ImageSource(image=image)
        )
        services.append(svc.model_copy(update={"build": None, "image": own}))
    return spec.model_copy(update={"services": services})


# --- deadlines -------------------------------------------------------------------------------------


def asked(builds: list[Build], now: float, budget_s: float) -> list[Build]:
    """The builds as asked for at ``now``: each pending one gets its own deadline ``now + budget_s``."""
    return [
        replace(b, deadline_at=now + budget_s) if b.state == "pending" and b.deadline_at is None else b for b in builds
    ]


def extended(builds: list[Build], now: float, budget_s: float) -> list[Build]:
    """After a build ended at ``now``: each pending one may have started only now (a builder slot freed), so
    its deadline is at least ``now + budget_s``. Only the builds whose deadline moved are returned."""
    out = []
    for b in builds:
        if b.state == "pending" and b.deadline_at is not None and b.deadline_at < now + budget_s:
            out.append(replace(b, deadline_at=now + budget_s))
    return out


def overdue(builds: list[Build], now: float) -> list[Build]:
    """The pending builds past their own deadline."""
    return [b for b in builds if b.state == "pending" and b.deadline_at is not None and now > b.deadline_at]


def next_deadline(builds: list[Build]) -> float | None:
    """The earliest deadline of a pending build (None: none pending with a deadline)."""
    found = [b.deadline_at for b in builds if b.state == "pending" and b.deadline_at is not None]
    return min(found) if found else None


def overdue_reason(late: list[Build], timeout_s: float) -> str:
    """Why the deployment fails: the builds past their deadline, named."""
    return f"the build of {', '.join(b.label for b in late)} did not finish within {timeout_s:g}s"
