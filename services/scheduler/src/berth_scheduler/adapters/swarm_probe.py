"""Berth's readiness check of a Swarm task: an HTTP GET of the health path, made on the task's own node.

A task's overlay address is reached only from the overlay; its node reaches it on ``docker_gwbridge``. The
check asks that node's engine (its SSH-forwarded socket) for the task container's address there, then
opens a TCP connection to it through the node's SSH connection (``direct-tcpip``: nothing is published).
A node Berth cannot reach (a dead worker) fails the check within ``timeout_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain.swarms import GATEWAY_NETWORK, gateway_address

if TYPE_CHECKING:  # asyncssh is loaded with the first Swarm, not at start
    from berth_common.ssh import SshPool, SshTarget

NodeTargets = Callable[[], Mapping[str, tuple[str, "SshTarget"]]]  # node id -> (server id, how to reach it)


class NodeProbe:
    def __init__(self, pool: SshPool, nodes: NodeTargets, timeout_s: float = 3.0) -> None:
        self.pool = pool
        self.nodes = nodes
        self.timeout_s = timeout_s

    async def ready(self, task: dom.Task, port: int, path: str) -> bool:
        """Whether the task answers ``GET path`` with a 2xx now."""
        try:
            return await asyncio.wait_for(self._check(task, port, path), self.timeout_s)
        except (TimeoutError, OSError, SwarmError, ConnectionError):
            return False
        except Exception as exc:  # SSH failures (berth_common.ssh) and asyncssh's channel errors: not reachable
            if type(exc).__module__.startswith(("asyncssh", "berth_common.ssh")):
                return False
            raise

    async def _check(self, task: dom.Task, port: int, path: str) -> bool:
        where = self.nodes().get(task.node_id)
        if where is None or not task.container_id:
            return False
        server_id, target = where
        engine = SwarmEngine(await self.pool.docker_socket(server_id, target), timeout=self.timeout_s)
        address = gateway_address(await engine.network(GATEWAY_NETWORK) or {}, task.container_id)
        if address is None:
            return False
        conn = await self.pool.connection(server_id, target)
        reader, writer = await conn.open_connection(address, port)
        try:
            writer.write(dom.probe_request(path))
            status = dom.probe_status(await reader.readline())
        finally:
            writer.close()
        return status is not None and 200 <= status < 300
