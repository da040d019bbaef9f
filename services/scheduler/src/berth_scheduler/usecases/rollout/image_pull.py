"""One image pulled on one server through its engine, with its progress in the deployment log.

Shared by the prebuilt images of ``pull.py`` (the application's image and pull policy) and the built
images a push registry holds (``delivery.py``: the build's ``pushed_ref``, with the push registry's
credentials). The engine contacts the registry itself; the credentials go with that one call
(``X-Registry-Auth``). A failed pull raises :class:`PullFailedError` with the registry's reason in words a
person can act on, secret values redacted.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from berth_common import registries
from berth_common.catalogue import LogLine, Message, RegistryAuth
from berth_common.db.unit import Unit
from berth_common.docker import LOCAL, disk_full
from berth_common.images import parse_image_map
from berth_common.logging import get_logger
from berth_common.outbound import HostError
from berth_common.outbound_net import OutboundRefused, checked_addresses
from berth_common.registries import ImageRef
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import server_words
from berth_scheduler.adapters.registry import ImageRegistry, PullError
from berth_scheduler.domain import images, names
from berth_scheduler.usecases.rollout import room
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.units import emit_all

log = get_logger(__name__)
FLUSH_S = 0.5  # progress lines are sent in batches at most this often


async def log_lines(rt: RolloutContext, deployment_id: str, given: list[str], *, once: bool = False) -> None:
    """Deploy log lines on ``log.<deployment_id>``, numbered after the ones the deployment already has;
    ``once``: a line the deployment's log has had before is left out (a report said once per deployment)."""
    if not given:
        return

    async def body(unit: Unit) -> None:
        lines = given
        if once:
            digests = [hashlib.sha256(line.encode()).hexdigest() for line in given]
            fresh = await store.new_reports(unit.session, deployment_id, digests)
            lines = [line for line, d in zip(given, digests, strict=True) if d in fresh]
            if not lines:
                return
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


class PullFailedError(RuntimeError):
    """A pull failed on a server; the message is the reason for a person (secrets redacted)."""


async def check_registry(rt: RolloutContext, registry: str, team_id: str) -> None:
    """The registry's addresses, as the control plane resolves them, pass the team's outbound rule (the
    engine connects itself: this is a check before the pull, not a pin). Docker Hub and the mirrors of the
    platform's image map are the operator's choice: not checked."""
    mirrors = registries.mirror_hosts(parse_image_map(rt.settings.image_map))
    if registry == "docker.io" or registry in mirrors:
        return
    host, port = registry, 443
    if registry.count(":") == 1:
        host, _, given = registry.partition(":")
        port = int(given)
    try:
        await checked_addresses(host, port, rt.settings.outbound_policy_for(team_id))
    except OutboundRefused as exc:
        raise PullFailedError(f"registry {registry} is refused: {exc.reason}") from None
    except (OSError, HostError):
        return  # the engine's own resolution answers with its reason


async def pull_on(
    rt: RolloutContext,
    deployment_id: str,
    image: str,
    ref: ImageRef,
    policy: images.Policy,
    auth: RegistryAuth | None,
    secrets: list[str],
    server: str,
    team_id: str = "",
) -> tuple[str, str]:
    """Pull or find ``image`` (``ref``: it taken apart) on one server by ``policy``: (digest or "", what
    happened). Before a pull, the registry's addresses pass the team's outbound rule (``team_id``)."""
    where = "this server" if server == LOCAL else f"server {server}"
    prefix = "[starting] " if server == LOCAL else f"[starting] server {server}: "
    registry = ImageRegistry(await rt.fleet.docker(server))
    present = await registry.local(image)
    if not images.must_pull(policy, present is not None):
        digest = images.digest_of(ref, present or [])
        return digest or "", f"image {image} is on {where} (pull policy {policy}: no registry contacted)"

    await check_registry(rt, ref.registry, team_id)
    header = images.registry_auth_header(ref.registry, auth.username, auth.reveal()) if auth else None
    started = time.monotonic()
    pending = [
        f"{prefix}pull: {image} from {ref.registry} (pull policy {policy}"
        + (f", as {auth.username})" if auth else ", anonymous)")
    ]
    last_flush = time.monotonic()
    pulled: list[str] = []  # the digest the registry reported
    layers: dict[str, int] = {}  # layer id -> compressed size, as the engine reported them

    async def on_message(message: dict[str, Any]) -> None:
        nonlocal last_flush
        pulled.extend(d for d in [images.stream_digest(ref, message)] if d)
        layers.update([found] if (found := images.layer_total(message)) else [])
        line = images.progress_line(message)
        if line is not None:
            pending.append(f"{prefix}{names.redact(line, secrets)}")
        if pending and time.monotonic() - last_flush >= FLUSH_S:
            batch = pending[:]
            pending.clear()
            last_flush = time.monotonic()
            await log_lines(rt, deployment_id, batch)

    try:
        await registry.pull(images.pull_call(ref, header), on_message, rt.settings.pull_timeout_s)
    except PullError as exc:
        await log_lines(rt, deployment_id, pending)
        why = images.failure_reason(ref, str(exc), with_credentials=auth is not None, present=present is not None)
        needed = sum(layers.values()) or None
        free = await room.free_on(rt, server) if needed else None
        if images.failure_kind(str(exc)) == "disk_full" or disk_full.no_room(needed, free) is not None:
            # the full disk named first, with the server (and the image against the room there)
            why = disk_full.without_room(why, server_words(server), image, needed, free, at_least=True)
        elif server != LOCAL:
            why = f"server {server}: {why}"
        log.info("image pull failed", deployment_id=deployment_id, image=image, kind=images.failure_kind(str(exc)))
        raise PullFailedError(names.redact(why, secrets)) from None
    await log_lines(rt, deployment_id, pending)
    digest = pulled[-1] if pulled else images.digest_of(ref, await registry.local(image) or [])
    detail = f"pulled {image} from {ref.registry} in {time.monotonic() - started:.1f}s" + (
        f" ({digest})" if digest else ""
    )
    return digest or "", detail if server == LOCAL else f"server {server}: {detail}"
