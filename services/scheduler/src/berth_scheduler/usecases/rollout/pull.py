"""The starting state of a prebuilt image: the image made ready on the server first, then the replicas.

By the application's pull policy (``domain.images``) the image is pulled from its registry (with the
team's credentials for that registry, if the snapshot carries them) or the copy on the server is used
without contacting a registry. The pull's progress goes to the deployment log as it arrives; its digest
(``RepoDigests``) is recorded with ``ImageReady`` (which also starts the readiness deadline), so a restart
does not pull again and a rollback can run exactly this image. A failed pull fails the deployment with the
registry's reason in words a person can act on; nothing was started, so nothing is undone.

A deployment on several servers pulls on each of them at once (each through its own engine); the image is
ready when every server has it, and the digest recorded is the first server's.

A compose service with its own image (``WebService.image``, ``WorkerService.image``) has it pulled or found
the same way, by its own pull policy and with the team's credentials for its registry, on each server that
runs the service, before any replica starts (a failed pull fails the deployment naming the service); an
image a service's build made (``berth/<app>-<service>:...``) is streamed from the build server instead. What each such service runs is recorded (its digest, or its
build's image: ``domain.service_images``) for a rollback to this deployment.
"""

from __future__ import annotations

import asyncio
from typing import Any

from berth_common.catalogue import ApplicationSpec, GitSource, ImageSource
from berth_common.logging import get_logger
from berth_common.registries import InvalidReferenceError, credentials_for, parse
from berth_scheduler.adapters import build_records
from berth_scheduler.domain import images, machine, placement
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.domain.service_images import ServiceImage, ran
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.delivery import deliver
from berth_scheduler.usecases.rollout.image_pull import PullFailedError, log_lines, pull_on
from berth_scheduler.usecases.rollout.pre_deploy import (
    PreDeployFailedError,
    before_layer,
    remove_job,
    run_job,
    runs_first,
)
from berth_scheduler.usecases.rollout.steps import Waiter, servers_of, transit, write
from berth_scheduler.usecases.rollout.verify import start_and_verify

log = get_logger(__name__)


async def pull_then_start(rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
    """starting: a prebuilt image not looked at yet is made ready first (pulled or found), then the
    pre-deploy job when the application has one (``pre_deploy.py``), then ``start_and_verify`` as for every
    deployment."""
    if not r.needs_build and r.image and r.image_digest is None:
        ready = await ensure_image(rt, r, row)
        if ready is None:
            return
        r = ready
    if not await service_images(rt, r, row):
        return
    spec = rt.sealer.open(row.spec)
    job = spec.pre_deploy
    if job is not None and runs_first(spec):
        after = await run_job(rt, r, row)
        if after is None:
            return
        r = after
    layered = before_layer(rt, r, row) if job is not None and not runs_first(spec) else None
    try:
        await start_and_verify(rt, r, row, wait, layered)
    except PreDeployFailedError:
        return  # the deployment failed: its undo removes the job and the replicas started before it
    if job is not None:  # the deployment left starting: the job is never looked at again
        await remove_job(rt, r.deployment_id, await servers_of(rt, r.application_id, spec))


async def service_images(rt: RolloutContext, r: Rollout, row: Any) -> bool:
    """Pull or find each compose service's own image on the servers that run it; False when the
    deployment failed (a pull was refused)."""
    spec = rt.sealer.open(row.spec)
    wanted: dict[tuple[str, str], tuple[str, ImageSource]] = {}
    for slot in placement.slots(spec):
        own = slot.service.image
        if own is not None and own.image != r.image:
            wanted.setdefault((own.image, slot.server_id), (slot.service.name, own))
    if not wanted:
        same = _same_as_app(spec, r)
        if same:
            await write(rt, build_records.record_images, r.deployment_id, same)
        return True
    secrets = spec.secret_values()
    origin = spec.source.build_server if isinstance(spec.source, GitSource) else LOCAL
    keys = list(wanted)
    outcomes = await asyncio.gather(
        *(_own_image(rt, r, *wanted[key], key[1], secrets, origin) for key in keys),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, PullFailedError):
            await transit(rt, r.deployment_id, machine.Fail(str(outcome)[:3500]))
            return False
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    done = [o for o in outcomes if isinstance(o, tuple)]
    await log_lines(rt, r.deployment_id, [f"[starting] {detail}" for detail, _ in done])
    digests: dict[str, str] = {}
    for (image, _), (_, digest) in zip(keys, done, strict=True):
        digests[image] = digests.get(image) or digest
    records = [
        ran(svc.name, svc.image.image, digests.get(svc.image.image, ""))
        for svc in spec.services
        if svc.image is not None and svc.image.image in digests
    ]
    await write(rt, build_records.record_images, r.deployment_id, records + _same_as_app(spec, r))
    return True


def _same_as_app(spec: ApplicationSpec, r: Rollout) -> list[ServiceImage]:
    """The services whose own image is the application's (made ready with it): what they ran."""
    return [
        ran(svc.name, svc.image.image, r.image_digest or "")
        for svc in spec.services
        if svc.image is not None and svc.image.image == r.image
    ]


async def service_image_on(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, service: str, server: str) -> str:
    """A scale onto ``server``: the service's own image made present there as a deployment does (streamed
    from the build server, or pulled when the server lacks it: a scale runs the live version, so a registry
    is not asked for a newer one); what happened ("" when the service runs the application's image).
    Raises ``PullFailedError`` naming the service."""
    svc = next(s for s in spec.services if s.name == service)
    own = svc.image
    if own is None or own.image == r.image:
        return ""
    own = own.model_copy(update={"pull_policy": "if-missing"})
    origin = spec.source.build_server if isinstance(spec.source, GitSource) else LOCAL
    detail, _ = await _own_image(rt, r, service, own, server, spec.secret_values(), origin)
    return detail


async def _own_image(
    rt: RolloutContext, r: Rollout, service: str, own: ImageSource, server: str, secrets: list[str], origin: str
) -> tuple[str, str]:
    """One service's image on one server: (what happened, its digest or "") (raises ``PullFailedError``
    naming the service). Berth's own image (``berth/``: the service's build, on the build server
    ``origin``) is never pulled: it is streamed from there to a server that lacks it."""
    try:
        ref = parse(own.image)
    except InvalidReferenceError as exc:
        raise PullFailedError(f"service {service}: {exc}") from None
    policy = images.effective_policy(ref, own.pull_policy)
    if policy == "never":
        if server != origin:
            await deliver(rt, r.deployment_id, images.ImageDelivery("stream", own.image, origin), server)
        return f"service {service}: image {own.image} is Berth's own (never pulled)", ""
    auth = credentials_for(ref.registry, [own.auth] if own.auth is not None else [])
    try:
        digest, detail = await pull_on(rt, r.deployment_id, own.image, ref, policy, auth, secrets, server, r.team_id)
    except PullFailedError as exc:
        raise PullFailedError(f"service {service}: {exc}") from None
    return f"service {service}: {detail}", digest


async def ensure_image(rt: RolloutContext, r: Rollout, row: Any) -> Rollout | None:
    """Pull or find the deployment's image and record ``ImageReady``; None when the deployment failed.
    An image in Berth's own namespace is left to the container's creation (it is never pulled)."""
    spec = rt.sealer.open(row.spec)
    source = spec.source
    assert isinstance(source, ImageSource) and r.image
    try:
        ref = parse(r.image)
    except InvalidReferenceError as exc:
        await transit(rt, r.deployment_id, machine.Fail(str(exc)))
        return None
    policy = images.effective_policy(ref, source.pull_policy)
    if policy == "never":
        return r
    servers = placement.servers_in(spec)
    outcomes = await asyncio.gather(
        *(_ready_on(rt, r, spec, ref, policy, server) for server in servers), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, PullFailedError):
            await transit(rt, r.deployment_id, machine.Fail(str(outcome)[:3500]))
            return None
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    ready = [o for o in outcomes if isinstance(o, tuple)]
    digest = next((d for d, _ in ready if d), "")
    detail = "; ".join(d for _, d in ready)
    return await transit(rt, r.deployment_id, machine.ImageReady(digest, detail))


async def _ready_on(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, ref: Any, policy: images.Policy, server: str
) -> tuple[str, str]:
    """Pull or find the image on one server: (digest or "", what happened)."""
    assert r.image and isinstance(spec.source, ImageSource)
    source = spec.source
    auth = credentials_for(ref.registry, [source.auth] if source.auth is not None else [])  # a mirror's host
    return await pull_on(rt, r.deployment_id, r.image, ref, policy, auth, spec.secret_values(), server, r.team_id)
