"""Berth's readiness check of a Swarm task: an HTTP GET of the health path, made on the task's own node.

A task's overlay address is reached only from the overlay; its node reaches it on ``docker_gwbridge``. The
check asks that node's engine (its SSH-forwarded socket) for the task container's address there, then
opens a TCP connection to it through the node's SSH connection (``direct-tcpip``: nothing is published).
A node Berth cannot reach (a dead worker) fails the check within ``timeout_s``. A task on a node that is not
a server Berth reaches at all (an adopted Swarm's worker) is checked over the overlay network instead, from
the overlay probe on the manager's node (``overlay``, ``adapters/swarm_overlay.py``): the same GET, sent to
the task's overlay address (``reaches_over_overlay``). Without an overlay probe such a task is not checked
here: the rollout takes the engine's health check there (``usecases/swarm_rollout.py``).

What the last failed check of each task saw is kept in words (``said``, by task id: connection refused,
reset, timed out, the status with the first bytes of the body, as replicas' checks say it), and a task
container's last log lines are read through its node's engine (``logs``), so a version that is not ready
says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from berth_scheduler.adapters.engine_exec import EngineExecError
from berth_scheduler.adapters.remote_readiness import get_seen
from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.domain import swarm_rollout as dom
from berth_scheduler.domain.readiness import Seen
from berth_scheduler.domain.swarm_app import container_name
from berth_scheduler.domain.swarms import GATEWAY_NETWORK, gateway_address

if TYPE_CHECKING:  # asyncssh is loaded with the first Swarm, not at start
    from berth_common.ssh import SshPool, SshTarget

NodeTargets = Callable[[], Mapping[str, tuple[str, "SshTarget"]]]  # node id -> (server id, how to reach it)
PROBE_MADE_S = 300.0  # making the overlay probe (its image delivered, created, started) may take this long
Logs = Callable[[str, str, int], Awaitable[str]]  # (server id, container, lines) -> its last lines


class NodeProbe:
    def __init__(
        self,
        pool: SshPool,
        nodes: NodeTargets,
        timeout_s: float = 3.0,
        logs: Logs | None = None,
        clock: Callable[[], float] = time.monotonic,
        overlay: OverlayProbe | None = None,
    ) -> None:
        self.pool = pool
        self.overlay = overlay
        self.nodes = nodes
        self.timeout_s = timeout_s
        self.logs = logs
        self.clock = clock
        self.said: dict[str, str] = {}  # task id -> what its last failed check saw
        # task id -> (the error status it keeps answering, since when, last seen): an app's own final answer
        self._stuck: dict[str, tuple[int, float, float]] = {}

    def reaches(self, task: dom.Task) -> bool:
        """Whether the task's node is a server Berth reaches (its check is made there)."""
        return task.node_id in self.nodes()

    def reaches_over_overlay(self, task: dom.Task) -> bool:
        """Whether a task on a node Berth does not reach is checked over the overlay network (from the
        overlay probe on the manager's node)."""
        return self.overlay is not None and bool(task.address) and not self.reaches(task)

    async def ready(self, task: dom.Task, port: int, path: str) -> bool:
        """Whether the task answers ``GET path`` with a 2xx now (what it did otherwise: ``said``)."""
        seen = await self.seen(task, port, path)
        now = self.clock()
        if seen.ok:
            self.said.pop(task.task_id, None)
        else:
            self.said[task.task_id] = seen.text
        if seen.kind == "status" and seen.stuck and seen.status is not None:
            before = self._stuck.get(task.task_id)
            since = before[1] if before is not None and before[0] == seen.status else now
            self._stuck[task.task_id] = (seen.status, since, now)
        else:
            self._stuck.pop(task.task_id, None)
        return seen.ok

    def stuck(self, seconds: float) -> float | None:
        """How long a task checked just now has answered the same error status (one that waiting does not
        change: not a 502/503/504), once that is ``seconds`` or more; None otherwise. The same answer over
        and over fails the version at once, as a replica's check does (``ReadinessConfig.stuck_s``)."""
        now = self.clock()
        longest = max(
            (now - since for _, since, last in self._stuck.values() if now - last <= 2 * self.timeout_s), default=0.0
        )
        return longest if longest >= seconds else None

    async def seen(self, task: dom.Task, port: int, path: str) -> Seen:
        if self.overlay is not None and self.reaches_over_overlay(task):
            try:  # made once, outside the check's time (its image may have to be delivered first)
                await asyncio.wait_for(self.overlay.ensure(), PROBE_MADE_S)
            except Exception as exc:
                return Seen(False, f"GET {path}: the overlay probe on the manager is not running ({exc})", "error")
        try:
            return await asyncio.wait_for(self._check(task, port, path), self.timeout_s)
        except TimeoutError:
            return Seen(False, f"GET {path}: its node did not answer within {self.timeout_s:g} s", "timeout")
        except (OSError, SwarmError, ConnectionError, EngineExecError) as exc:
            return Seen(False, f"GET {path}: its node did not answer ({exc})", "error")
        except Exception as exc:  # SSH failures (berth_common.ssh) and asyncssh's channel errors: not reachable
            if type(exc).__module__.startswith(("asyncssh", "berth_common.ssh")):
                return Seen(False, f"GET {path}: its node did not answer ({exc})", "error")
            raise

    async def _check(self, task: dom.Task, port: int, path: str) -> Seen:
        where = self.nodes().get(task.node_id)
        if where is None and self.reaches_over_overlay(task):
            overlay = self.overlay

            async def through_overlay() -> Any:
                return overlay

            return await get_seen(through_overlay, task.address, port, path, self.timeout_s)
        if where is None or not task.container_id:
            return Seen(False, f"GET {path}: its node is not a server Berth reaches", "error")
        server_id, target = where
        engine = SwarmEngine(await self.pool.docker_socket(server_id, target), timeout=self.timeout_s)
        address = gateway_address(await engine.network(GATEWAY_NETWORK) or {}, task.container_id)
        if address is None:
            return Seen(False, f"GET {path}: the task has no address on its node yet", "down")

        async def connection() -> Any:
            return await self.pool.connection(server_id, target)

        return await get_seen(connection, address, port, path, self.timeout_s)

    async def aclose(self) -> None:
        """End the overlay probe's relay, when checks went through it (the probe container stays)."""
        if self.overlay is not None:
            await self.overlay.aclose()

    async def last_lines(self, service_name: str, task: dict[str, Any] | None, lines: int = 15) -> str:
        """The last ``lines`` a task's container wrote, read through its node ("" when there are none, or
        the node or its engine does not answer)."""
        if task is None or self.logs is None:
            return ""
        where = self.nodes().get(str(task.get("NodeID") or ""))
        if where is None:
            return ""
        try:
            return (await asyncio.wait_for(self.logs(where[0], container_name(service_name, task), lines), 10)).strip()
        except Exception:  # best effort: the reason is given without them
            return ""
