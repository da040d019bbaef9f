"""Start again the live version's replicas an engine restart left exited (``domain/revival.py``).

Run for one application at a time in the orchestrator's slot for it, so no rollout of that application
runs at the same moment; a server that does not answer is tried again at the next pass.
"""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common import labels
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain.revival import should_start
from berth_scheduler.usecases.rollout.context import RolloutContext

log = get_logger(__name__)


async def revive(rt: RolloutContext, application_id: str) -> list[str]:
    """The names of the replicas of the application's live version started again."""
    async with rt.sessionmaker() as s:
        if application_id in await store.unfinished_applications(s):
            return []
        live = await store.last_succeeded(s, application_id)
        if live is None:
            return []
        rows = await store.containers_of(s, live.id)
    started = []
    for server_id in sorted({r.server_id for r in rows}):
        names = {r.name for r in rows if r.server_id == server_id}
        try:
            docker = await rt.fleet.docker(server_id)
            found = await docker.list_containers({labels.APP: application_id})
            for c in found:
                if (
                    c.name not in names
                    or c.state == "running"
                    or not should_start(await docker.inspect(c.name), datetime.now(UTC))
                ):
                    continue
                await docker.start(c.name)
                started.append(c.name)
                log.warning(
                    "replica started again after its engine stopped it",
                    application_id=application_id,
                    deployment_id=live.id,
                    container=c.name,
                    server_id=server_id,
                )
        except (DockerUnavailable, DockerOperationError, ServerRefusedError) as exc:
            log.info("replicas not started again", application_id=application_id, server_id=server_id, error=str(exc))
    return started
