"""The application's image on a Swarm's manager, for the one-off containers Berth runs there itself (the
pre-deploy job, one-off and cron runs): Swarm pulls a registry image only on the nodes its tasks are placed
on, so the manager may not have it. A registry image is pulled there with the application's credentials
for its registry (the ``X-Registry-Auth`` the Swarm service was created with); Berth's own images reach
every node when they are delivered, so one missing there is told, not pulled.
"""

from __future__ import annotations

from typing import Any

from berth_common.registries import InvalidReferenceError, parse
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.registry import ImageRegistry, PullError
from berth_scheduler.domain.images import pull_call
from berth_scheduler.domain.swarm_app import LOCAL_NAMESPACE, service_auth

PULL_TIMEOUT_S = 600.0


async def _progress(_: dict[str, Any]) -> None:
    return None


async def on_manager(docker: DockerExecutor, image: str, source: object) -> str | None:
    """Make sure ``image`` is on the manager whose engine ``docker`` is: None once it is, else why not (for
    the run's or the job's failure). Raises ``EngineUnreachableError`` when the engine does not answer (the
    caller retries, as for any step)."""
    registry = ImageRegistry(docker)
    if await registry.local(image) is not None:
        return None
    if image.startswith(LOCAL_NAMESPACE):
        return f"the image {image} is not on the Swarm's manager (it is delivered with each deployment)"
    try:
        ref = parse(image)
    except InvalidReferenceError as exc:
        return f"the image {image} cannot be pulled on the Swarm's manager: {exc}"
    try:
        await registry.pull(pull_call(ref, service_auth(image, source)), _progress, PULL_TIMEOUT_S)
    except PullError as exc:
        return f"the image {image} could not be pulled on the Swarm's manager: {exc}"
    return None
