"""The application's files on a Swarm (``domain/swarm_files.py``): their secrets made on the manager before a
service version that mounts them is created, and the ones no service mounts any more removed after."""

from __future__ import annotations

from typing import Any

from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_common.logging import get_logger
from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.domain import swarm_app
from berth_scheduler.domain import swarm_files as dom

log = get_logger(__name__)


async def mounted(
    manager: SwarmEngine, application_id: str, team_id: str, spec: ApplicationSpec, svc: WebService | WorkerService
) -> tuple[dict[str, Any], ...]:
    """The ``ContainerSpec.Secrets`` of ``svc``'s files, their secrets made first (the same file is the same
    secret: made once, found after)."""
    secrets = dom.file_secrets(application_id, team_id, spec, svc)
    ids = {s.name: await manager.create_secret(s.body) for s in secrets}
    return tuple(dom.secret_refs(secrets, ids))


async def prune(manager: SwarmEngine, application_id: str) -> int:
    """Remove the application's file secrets that none of its services mounts (best effort: one that cannot
    go now goes after a later rollout); how many went."""
    try:
        used = dom.in_use(await manager.services(swarm_app.app_labels(application_id)))
        gone = 0
        for secret_id in dom.unused(await manager.secrets(swarm_app.app_labels(application_id)), used):
            gone += await manager.remove_secret(secret_id)
    except (SwarmError, ConnectionError, OSError) as exc:
        log.warning("swarm file secrets not pruned", application_id=application_id, error=str(exc))
        return 0
    if gone:
        log.info("swarm file secrets pruned", application_id=application_id, removed=gone)
    return gone
