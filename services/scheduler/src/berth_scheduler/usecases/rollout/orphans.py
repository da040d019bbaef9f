"""After an engine restart, end on its server the processes of containers the engine no longer has
(``domain/lost_tasks.py``: a crash that met their start or lost their task left them running after their
removal, with addresses the engine gives again; their namespaces then answer for the new containers), then
delete the ports of the Berth bridges that no namespace of the engine's containers is behind
(``domain/stale_ports.py``: namespaces the kernel has not yet ended, of those processes or of the containers
the restart stopped, answer the same way until it does).

A revival that finds a container its engine stopped (the evidence of a restart) asks for a sweep of that
server (:meth:`Orphans.after_restart`). The sweep runs in the background, so the replicas and databases are
started again meanwhile (a new container that got a stale address is served from the moment the sweep ended
what held it), and looks twice: at once, and ``AGAIN_S`` later for the containers others removed meanwhile
(proxy-sync makes the server's Traefik again after the same restart; a rollout undoes what it started). One
sweep of a server at a time, none again within ``QUIET_S`` of the last (the revivals of a server's
applications and databases find the same restart in one pass).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.lost_tasks import end_orphans, end_stale_ports
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.volume_dumps import helper_image

log = get_logger(__name__)
QUIET_S = 30.0
AGAIN_S = 15.0


class Orphans:
    def __init__(self, fleet: Any, clock: Callable[[], float] = time.monotonic, again_s: float = AGAIN_S) -> None:
        self.fleet = fleet  # ``adapters.fleet.Fleet``: its ``socket`` and ``docker`` put the helper's image there
        self.clock = clock
        self.again_s = again_s
        self._running: dict[str, asyncio.Task[list[int]]] = {}
        self._done_at: dict[str, float] = {}

    def after_restart(self, server_id: str, docker: DockerExecutor) -> asyncio.Task[list[int]] | None:
        """Sweep the server of ``docker`` in the background unless a sweep of it runs or ended within
        ``QUIET_S``; the sweep's task (None: none started)."""
        if server_id in self._running:
            return None
        if server_id in self._done_at and self.clock() - self._done_at[server_id] < QUIET_S:
            return None
        task = asyncio.create_task(self._sweep(server_id, docker), name=f"orphans:{server_id}")
        self._running[server_id] = task
        return task

    async def _sweep(self, server_id: str, docker: DockerExecutor) -> list[int]:
        """The processes ended in both looks."""
        try:
            ended = await self._look(server_id, docker)
            await asyncio.sleep(self.again_s)
            return ended + await self._look(server_id, docker)
        finally:
            self._running.pop(server_id, None)
            self._done_at[server_id] = self.clock()

    async def _look(self, server_id: str, docker: DockerExecutor) -> list[int]:
        """End the processes of removed containers, then delete the ports that nothing of the engine's is
        behind (theirs among them, and those of the namespaces of the containers the restart stopped); the
        processes ended."""
        ended: list[int] = []
        try:
            await helper_image(docker, server_id, self.fleet.socket, await self.fleet.docker(LOCAL))
            ended = await end_orphans(docker)
        except Exception as exc:  # the engine, the connection or the helper's image: the next restart looks again
            log.warning("processes of removed containers not looked for", server_id=server_id, error=str(exc))
            return ended
        if ended:
            log.warning(
                "processes an engine restart left running after their containers' removal ended",
                server_id=server_id,
                processes=ended,
            )
        else:
            log.info("no process of a removed container runs after an engine restart", server_id=server_id)
        try:
            deleted = await end_stale_ports(docker)
        except Exception as exc:
            log.warning("ports no container is behind not looked for", server_id=server_id, error=str(exc))
        else:
            if deleted:
                log.warning("ports no container is behind deleted from the bridges", server_id=server_id, ports=deleted)
        return ended

    async def idle(self) -> None:
        """Wait for the sweeps under way (tests)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the sweeps under way (the service stops): a sweeper left on its server is removed by the
        next sweep there, which removes a leftover of its name first."""
        await asyncio.gather(*(cancel_and_wait(t) for t in list(self._running.values())))
