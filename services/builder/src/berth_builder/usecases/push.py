"""Pushing a build's image to the team's push registry, the last step of a ``cmd.build.start`` that names one
(``source.push``); its result is ``evt.build.succeeded``'s ``pushed_ref``.

The image is tagged ``<registry>/<namespace>/<application>:<deployment>`` on the build server's engine and
pushed with the registry's credentials (opened here, sent to the engine for this push only); the progress
goes to the build log. The push tag is removed afterwards, pushed or not: the build server keeps only
Berth's own tag. A registry that refuses the credentials refuses before any layer is written, so a failed
push leaves no manifest behind (and the build then fails with the registry's reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from berth_builder.adapters.docker import DockerClient
from berth_builder.domain import push as dom
from berth_common import sealing
from berth_common.catalogue import PushTarget
from berth_common.docker import EngineError

Say = Callable[[str], Awaitable[None]]


class PushFailed(Exception):
    """The push did not complete; the message says why and what to do."""


async def push_image(docker: DockerClient, image_tag: str, target: PushTarget, say: Say) -> str:
    """Push ``image_tag`` to ``target``; the pushed reference ``<repository>@sha256:...``."""
    plan = dom.push_plan(image_tag, target)
    try:
        password = plan.auth.reveal()
    except sealing.UnsealError as exc:
        raise PushFailed(f"the push registry's password cannot be read: {exc}") from None
    await say(f"pushing {plan.reference} (as {plan.auth.username})")
    try:
        await docker.call(dom.tag_call(image_tag, plan))
    except EngineError as exc:
        raise PushFailed(f"could not tag {image_tag} as {plan.reference}: {exc.message}") from None
    digests: list[str] = []
    errors: list[str] = []

    async def on_object(message: dict[str, Any]) -> None:
        error = dom.stream_error(message)
        if error is not None:
            errors.append(error)
            return
        digests.extend(d for d in [dom.stream_digest(message)] if d)
        line = dom.progress_line(message)
        if line is not None:
            await say(line)

    try:
        await docker.stream(dom.push_call(plan, password), on_object)
    finally:
        await docker.untag(plan.reference)
    if errors:
        raise PushFailed(dom.failure_reason(plan, errors[-1]))
    if not digests:
        raise PushFailed(f"the registry {plan.auth.registry} did not answer the push of {plan.reference} with a digest")
    pushed = plan.pushed(digests[-1])
    await say(f"pushed {pushed}")
    return pushed
