"""A scale's images on a server: what a new replica runs made present there as a deployment makes it, at the
version the live deployment ran.

A deployment pulls a prebuilt application image on every server it runs on, and each compose service's
own image on the servers that run the service (``pull.py``); a scale starts replicas from the live
deployment without a new deployment, so a server may lack what they run (pruned, or removed by hand).
Before the server's first new replica, the application's prebuilt image and the service's own pulled image
are pulled when missing, by the digests the live deployment recorded (``domain.images.scale_pull``: a tag
that moved since gives the replica the same image as its siblings), and tagged as the name the replicas are
made from; the service's own build (``berth/...``) is streamed from the build server
(``pull.service_image_on``). A pull that fails raises ``PullFailedError`` naming the service (the scale
fails, nothing is left started).
"""

from __future__ import annotations

from berth_common.catalogue import ApplicationSpec, ImageSource
from berth_common.registries import InvalidReferenceError, credentials_for, parse
from berth_scheduler.adapters.registry import ImageRegistry
from berth_scheduler.domain import images
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.domain.service_images import ServiceImage
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.delivery import delivery_to
from berth_scheduler.usecases.rollout.image_pull import PullFailedError, pull_on
from berth_scheduler.usecases.rollout.pull import service_image_on

PULLED = ("present", "check")  # where a prebuilt image was pulled by the deployment (not streamed to)


async def app_image_on(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, server: str) -> str:
    """The application's prebuilt image on ``server``, where the deployment pulled it (the control plane's
    engine, or any server by ``delivery.py``'s ``check``): what happened ("" when nothing was needed)."""
    source = spec.source
    if not r.image or not isinstance(source, ImageSource) or delivery_to(r, spec, server).way not in PULLED:
        return ""
    try:
        if images.effective_policy(parse(r.image), source.pull_policy) == "never":
            return ""  # Berth's own image: streamed by ``prepare_server``
    except InvalidReferenceError:
        return ""  # the deployment itself refused it
    return await _pinned(rt, r, "the application's image", r.image, r.image_digest, source, spec, server)


async def service_image(
    rt: RolloutContext, r: Rollout, spec: ApplicationSpec, service: str, server: str, ran: list[ServiceImage]
) -> str:
    """``service``'s own image on ``server`` (``ran``: what each service ran in the live deployment): what
    happened ("" when the service runs the application's image)."""
    own = next(s for s in spec.services if s.name == service).image
    if own is None or own.image == r.image:
        return ""
    try:
        policy = images.effective_policy(parse(own.image), own.pull_policy)
    except InvalidReferenceError as exc:
        raise PullFailedError(f"service {service}: {exc}") from None
    if policy == "never":  # Berth's own image: streamed from the build server
        return await service_image_on(rt, r, spec, service, server)
    digest = next((x.image for x in ran if x.service == service and x.named == own.image), None)
    return await _pinned(rt, r, f"service {service}", own.image, digest, own, spec, server)


async def _pinned(
    rt: RolloutContext,
    r: Rollout,
    label: str,
    named: str,
    digest: str | None,
    source: ImageSource,
    spec: ApplicationSpec,
    server: str,
) -> str:
    docker = await rt.fleet.docker(server)
    if await ImageRegistry(docker).local(named) is not None:
        return ""
    how = images.scale_pull(named, digest)
    try:
        ref = parse(how.pull)
    except InvalidReferenceError as exc:
        raise PullFailedError(f"{label}: {exc}") from None
    auth = credentials_for(ref.registry, [source.auth] if source.auth is not None else [])
    try:
        _, detail = await pull_on(
            rt, r.deployment_id, how.pull, ref, "if-missing", auth, spec.secret_values(), server, r.team_id
        )
    except PullFailedError as exc:
        raise PullFailedError(f"{label}: {exc}") from None
    if how.tag is not None:
        await docker.tag_image(how.tag)
        detail += f", tagged {named}"
    return f"{label}: {detail}"
