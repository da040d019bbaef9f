"""The starting state of a prebuilt image: the image made ready on the server first, then the replicas.

By the application's pull policy (``domain.images``) the image is pulled from its registry (with the
team's credentials for that registry, if the snapshot carries them) or the copy on the server is used
without contacting a registry. The pull's progress goes to the deployment log as it arrives; its digest
(``RepoDigests``) is recorded with ``ImageReady`` (which also starts the readiness deadline), so a restart
does not pull again and a rollback can run exactly this image. A failed pull fails the deployment with the
registry's reason in words a person can act on; nothing was started, so nothing is undone.
"""

from __future__ import annotations

import time
from typing import Any

from berth_common.catalogue import ImageSource, LogLine, Message
from berth_common.db.unit import Unit
from berth_common.logging import get_logger
from berth_common.registries import InvalidReferenceError, credentials_for, parse
from berth_scheduler.adapters import store
from berth_scheduler.adapters.registry import ImageRegistry, PullError
from berth_scheduler.domain import images, machine, names
from berth_scheduler.domain.machine import Rollout
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.steps import Waiter, transit
from berth_scheduler.usecases.rollout.units import emit_all
from berth_scheduler.usecases.rollout.verify import start_and_verify

log = get_logger(__name__)
FLUSH_S = 0.5  # progress lines are sent in batches at most this often


async def pull_then_start(rt: RolloutContext, r: Rollout, row: Any, wait: Waiter) -> None:
    """starting: a prebuilt image not looked at yet is made ready first (pulled or found), then
    ``start_and_verify`` as for every deployment."""
    if not r.needs_build and r.image and r.image_digest is None:
        ready = await ensure_image(rt, r, row)
        if ready is None:
            return
        r = ready
    await start_and_verify(rt, r, row, wait)


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
    registry = ImageRegistry(rt.docker)
    present = await registry.local(r.image)
    if not images.must_pull(policy, present is not None):
        digest = images.digest_of(ref, present or [])
        detail = f"image {r.image} is on this server (pull policy {policy}: no registry contacted)"
        return await transit(rt, r.deployment_id, machine.ImageReady(digest or "", detail))

    auth = credentials_for(ref.registry, [source.auth] if source.auth is not None else [])  # a mirror's host
    header = images.registry_auth_header(ref.registry, auth.username, auth.reveal()) if auth else None
    secrets = spec.secret_values()
    started = time.monotonic()
    pending = [
        f"[starting] pull: {r.image} from {ref.registry} (pull policy {policy}"
        + (f", as {auth.username})" if auth else ", anonymous)")
    ]
    last_flush = time.monotonic()
    pulled: list[str] = []  # the digest the registry reported

    async def on_message(message: dict[str, Any]) -> None:
        nonlocal last_flush
        pulled.extend(d for d in [images.stream_digest(ref, message)] if d)
        line = images.progress_line(message)
        if line is not None:
            pending.append(f"[starting] {names.redact(line, secrets)}")
        if pending and time.monotonic() - last_flush >= FLUSH_S:
            batch = pending[:]
            pending.clear()
            last_flush = time.monotonic()
            await log_lines(rt, r.deployment_id, batch)

    try:
        await registry.pull(images.pull_call(ref, header), on_message, rt.settings.pull_timeout_s)
    except PullError as exc:
        await log_lines(rt, r.deployment_id, pending)
        why = images.failure_reason(ref, str(exc), with_credentials=auth is not None, present=present is not None)
        log.info("image pull failed", deployment_id=r.deployment_id, image=r.image, kind=images.failure_kind(str(exc)))
        await transit(rt, r.deployment_id, machine.Fail(names.redact(why, secrets)[:3500]))
        return None
    await log_lines(rt, r.deployment_id, pending)
    digest = pulled[-1] if pulled else images.digest_of(ref, await registry.local(r.image) or [])
    detail = f"pulled {r.image} from {ref.registry} in {time.monotonic() - started:.1f}s" + (
        f" ({digest})" if digest else ""
    )
    return await transit(rt, r.deployment_id, machine.ImageReady(digest or "", detail))
