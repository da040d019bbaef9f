"""The deployment's image on each server it runs on (``domain.images.image_delivery`` decides how).

A build the builder pushed to the team's push registry (``pushed_ref``) is pulled by that reference on
every server, with the push registry's credentials, and the replicas run exactly it. Without a push
registry, a built image exists on its build server's engine (``GitSource.build_server``, the control
plane's by default) and every other server that does not have it yet gets it streamed from there
(``docker save`` into ``docker load`` over the forwarded sockets, ``berth_common.image_delivery``), which
needs no registry; a transfer that fails on a server whose data root has less room than the image says so
with both sizes (``room.py``). A prebuilt image is pulled on each server by ``pull.py`` before the replicas start.
A compose service's own build (``domain/builds.py``) reaches the servers the same way: its pushed
reference is pulled (``pull.py``), its tag without a push registry is streamed from the build server.
"""

from __future__ import annotations

import time

from berth_common.catalogue import ApplicationSpec, GitSource
from berth_common.catalogue.specs import LOCAL_SERVER
from berth_common.docker import DockerUnavailable, disk_full
from berth_common.logging import get_logger
from berth_common.registries import credentials_for, parse
from berth_scheduler.adapters.docker import server_words
from berth_scheduler.adapters.registry import ImageRegistry
from berth_scheduler.domain import images
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.usecases.rollout import room
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.image_pull import log_lines, pull_on

log = get_logger(__name__)


class ImageMissingError(RuntimeError):
    """A prebuilt image is not on a server the deployment runs on (and is not Berth's to deliver)."""


class ImageNotDeliveredError(RuntimeError):
    """An image could not be streamed from its source server to another (the message says why)."""


def delivery_to(r: Rollout, spec: ApplicationSpec, server_id: str) -> images.ImageDelivery:
    """How the deployment's image reaches ``server_id``."""
    source = spec.source
    build_server = source.build_server if isinstance(source, GitSource) else LOCAL_SERVER
    return images.image_delivery(
        r.image or "", r.pushed_ref, built=r.needs_build, build_server=build_server, server=server_id
    )


async def image_on_server(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, server_id: str) -> None:
    """Make sure the image the deployment's replicas run is on ``server_id``: pulled from the push
    registry, streamed from the build server (or the control plane's engine for Berth's own images), or,
    for a prebuilt image, found where ``pull.py`` pulled it."""
    how = delivery_to(r, spec, server_id)
    if how.way == "present":
        return
    if how.way == "pull":
        await _pull_pushed(rt, r, spec, how.image, server_id)
        return
    await deliver(rt, r.deployment_id, how, server_id)


async def deliver(rt: RolloutContext, deployment_id: str, how: images.ImageDelivery, server_id: str) -> None:
    """``how.image`` streamed from ``how.source`` to ``server_id`` unless it is there already (``check``:
    it must be there)."""
    if how.way == "present":
        return
    docker = await rt.fleet.docker(server_id)
    if await ImageRegistry(docker).local(how.image) is not None:
        return
    if how.way == "check":
        raise ImageMissingError(f"image {how.image} is not on server {server_id} (it was not pulled there)")
    from berth_common.image_delivery import DeliveryError, deliver_image  # loaded when an image first goes to a server

    started = time.monotonic()
    source, target = await rt.fleet.socket(how.source), await rt.fleet.socket(server_id)
    try:
        sent = await deliver_image(source, target, how.image, timeout=rt.settings.pull_timeout_s)
    except (DeliveryError, DockerUnavailable) as exc:
        # a full disk named with the server (``DiskFullError``), or an image larger than the room there
        free = await room.free_on(rt, server_id)
        needed = await room.image_size_on(rt, how.source, how.image) if free is not None else None
        if isinstance(exc, DockerUnavailable) and disk_full.no_room(needed, free) is None:
            raise  # the engine went away: retried
        said = disk_full.without_room(str(exc), server_words(server_id), how.image, needed, free)
        raise ImageNotDeliveredError(said) from None
    took = time.monotonic() - started
    origin = "" if how.source == LOCAL_SERVER else f" from server {how.source}"
    log.info("image delivered", server_id=server_id, image=how.image, bytes=sent, seconds=round(took, 2))
    await log_lines(
        rt, deployment_id, [f"[starting] image {how.image} delivered{origin} to server {server_id} in {took:.1f}s"]
    )


async def _pull_pushed(rt: RolloutContext, r: Rollout, spec: ApplicationSpec, pushed_ref: str, server_id: str) -> None:
    """The build's image pulled from the team's push registry by digest (``if-missing``: a server that has
    it is not asked again), with that registry's credentials."""
    ref = parse(pushed_ref)
    push = spec.source.push if isinstance(spec.source, GitSource) else None
    auth = credentials_for(ref.registry, [push.auth] if push is not None else [])
    secrets = spec.secret_values()
    _, detail = await pull_on(rt, r.deployment_id, pushed_ref, ref, "if-missing", auth, secrets, server_id, r.team_id)
    await log_lines(rt, r.deployment_id, [f"[starting] {detail}"])
