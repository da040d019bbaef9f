"""The deployment's image on each server it runs on, and the deploy log lines that say so.

A built image exists on the control plane's engine (where the builder made it); a remote server that
does not have it yet gets it streamed from that engine (``docker save`` into ``docker load`` over the
forwarded sockets, ``berth_common.image_delivery``), which needs no registry. A prebuilt image is pulled
on each server by ``pull.py`` before the replicas start.
"""

from __future__ import annotations

import time

from berth_common.catalogue import LogLine, Message
from berth_common.db.unit import Unit
from berth_common.docker import LOCAL
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.registry import ImageRegistry
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.units import emit_all

log = get_logger(__name__)


async def log_lines(rt: RolloutContext, deployment_id: str, lines: list[str]) -> None:
    """Deploy log lines on ``log.<deployment_id>``, numbered after the ones the deployment already has."""
    if not lines:
        return

    async def body(unit: Unit) -> None:
        first = await store.take_log_seq(unit.session, deployment_id, len(lines))
        items: list[tuple[Message, str, str | None]] = [
            (
                LogLine(deployment_id=deployment_id, stream="deploy", seq=first + i, line=text[:16000]),
                f"log-{deployment_id}-{first + i}",
                f"log.{deployment_id}",
            )
            for i, text in enumerate(lines)
        ]
        await emit_all(unit, items)

    await rt.units.run(body)


class ImageMissingError(RuntimeError):
    """A prebuilt image is not on a server the deployment runs on (and is not Berth's to deliver)."""


async def image_on_server(rt: RolloutContext, r: Rollout, server_id: str, image: str) -> None:
    """Make sure ``image`` is on the remote server ``server_id``: an image Berth built is delivered from the
    control plane's engine; a prebuilt one must have been pulled there already."""
    docker = await rt.fleet.docker(server_id)
    if await ImageRegistry(docker).local(image) is not None:
        return
    if not (r.needs_build or image.startswith("berth/")):  # Berth's own images are built here, never pulled
        raise ImageMissingError(f"image {image} is not on server {server_id} (it was not pulled there)")
    from berth_common.image_delivery import deliver_image  # loaded when an image first goes to a server

    started = time.monotonic()
    source, target = await rt.fleet.socket(LOCAL), await rt.fleet.socket(server_id)
    sent = await deliver_image(source, target, image, timeout=rt.settings.pull_timeout_s)
    took = time.monotonic() - started
    log.info("image delivered", server_id=server_id, image=image, bytes=sent, seconds=round(took, 2))
    await log_lines(rt, r.deployment_id, [f"[starting] image {image} delivered to server {server_id} in {took:.1f}s"])
