"""What a web replica that does not pass its GET is doing, looked at while readiness waits.

From ``sockets_after_s`` after the wait began, and only while the GET fails (a correct app passes before and
pays nothing), a background task reads the replica's listening sockets through a short-lived busybox helper
in its network namespace (:func:`domain.readiness.sockets_helper_body`, through the engine of the replica's
server) and, once, the ports its image's ``EXPOSE`` names. The same port mismatch seen by two reads in a row,
nothing on the port ``expose_grace_s`` after the wait began while ``EXPOSE`` names other ports, or the same
stuck answer (:attr:`Seen.stuck`) for ``stuck_s``, ends the wait with its reason at once; the
deadline stays for everything else (an app still starting has no listener yet, and is left alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from berth_common.docker import DockerUnavailable
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import HelperContainer
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.readiness import (
    Listener,
    ReadinessConfig,
    Seen,
    closed_text,
    exposed_ports,
    parse_listeners,
    port_mismatch,
    sockets_helper_body,
    sockets_helper_name,
)

HELPER_TIMEOUT_S = 5.0
_finishing: set[asyncio.Task[list[Listener] | None]] = set()  # reads left to end after their wait ended


def describe_error(path: str, exc: httpx.HTTPError, timeout_s: float) -> Seen:
    """A GET that got no answer, told as a person would say it."""
    if isinstance(exc, httpx.TimeoutException):
        return Seen(False, f"GET {path} timed out after {timeout_s:g} s", "timeout")
    if isinstance(exc, httpx.RemoteProtocolError):
        return Seen(False, f"GET {path}: the connection was closed with no HTTP answer", "closed")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return Seen(False, f"GET {path}: connection refused", "refused")
        if isinstance(cause, ConnectionResetError):
            return Seen(False, f"GET {path}: connection reset", "reset")
        cause = cause.__cause__ or cause.__context__
    return Seen(False, f"GET {path} failed: {exc or type(exc).__name__}", "error")


async def read_listeners(docker: DockerExecutor, replica: str, container_id: str) -> list[Listener]:
    """The listening sockets of a running container, read by the sockets helper."""
    name = sockets_helper_name(replica)
    try:
        async with (
            asyncio.timeout(HELPER_TIMEOUT_S),
            HelperContainer(docker, name, sockets_helper_body(container_id)) as h,
        ):
            out = await h.drain()
            await h.exit_code(HELPER_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(Exception):  # timed out while the engine was creating it
            await docker.remove(name)
        raise
    return parse_listeners(out.decode(errors="replace"))


async def image_exposed(docker: DockerExecutor, image_id: str) -> list[int]:
    """The ports the image's ``EXPOSE`` names ([] when the engine does not know the image)."""
    try:
        info = await docker._call(f"inspect image {image_id}", docker.docker.get(f"images/{image_id}/json"))
    except DockerOperationError:
        return []
    return exposed_ports((info or {}).get("Config"))


class Diagnosis:
    """The look-behind of one web replica's wait (see the module's docstring)."""

    def __init__(self, docker: DockerExecutor, spec: ContainerSpec, config: ReadinessConfig) -> None:
        assert spec.container_port is not None and spec.health_path is not None
        self.docker, self.spec, self.config = docker, spec, config
        self.port, self.path = spec.container_port, spec.health_path
        self.started = time.monotonic()
        self.listeners: list[Listener] | None = None  # the last read
        self.exposed: list[int] | None = None
        self.readable = True  # False once the helper cannot run on this server (no busybox image there)
        self._task: asyncio.Task[list[Listener] | None] | None = None
        self._last_read = float("-inf")
        self._mismatches = 0  # reads in a row that showed a mismatch
        self._stuck: tuple[str, int | None] | None = None
        self._stuck_since = 0.0

    def after(self, info: dict[str, Any], seen: Seen) -> tuple[str | None, str]:
        """After a failed GET: (the reason to fail now, or None; what the GET saw, in words)."""
        now = time.monotonic()
        waited = now - self.started
        verdict = self._collect(waited)
        self._maybe_read(info, now, waited)
        said = closed_text(self.path, self.port, self.listeners) if seen.kind == "closed" else seen.text
        if verdict is not None:
            return verdict, said
        if not self.readable and self.exposed is not None:
            verdict = port_mismatch(self.port, None, self.exposed, waited, self.config.expose_grace_s)
            if verdict is not None:
                return verdict, said
        key = (seen.kind, seen.status) if seen.stuck and self._answer_is_final(seen) else None
        if key != self._stuck:
            self._stuck, self._stuck_since = key, now
        elif key is not None and now - self._stuck_since >= self.config.stuck_s:
            return f"{said} (for {now - self._stuck_since:.0f} s)", said
        return None, said

    def _answer_is_final(self, seen: Seen) -> bool:
        """A status is the app's own answer; a connection closed with no answer counts once the sockets show
        the app listening on the port (through the engine's proxy, a port nobody listens on looks the same)."""
        if seen.kind != "closed":
            return True
        return self.listeners is not None and any(x.port == self.port for x in self.listeners)

    def _collect(self, waited: float) -> str | None:
        """Take a finished read: the mismatch it shows, once two reads in a row showed one."""
        if self._task is None or not self._task.done():
            return None
        task, self._task = self._task, None
        listeners = None if task.cancelled() or task.exception() is not None else task.result()
        if listeners is None:
            return None
        self.listeners = listeners
        grace = self.config.expose_grace_s
        by_sockets = port_mismatch(self.port, listeners, [], waited, grace)
        self._mismatches = self._mismatches + 1 if by_sockets is not None else 0
        if by_sockets is not None:
            return by_sockets if self._mismatches >= 2 else None
        return port_mismatch(self.port, listeners, self.exposed or [], waited, grace)  # EXPOSE: the grace waited

    def _maybe_read(self, info: dict[str, Any], now: float, waited: float) -> None:
        if self._task is not None or waited < self.config.sockets_after_s:
            return
        if not self.readable and self.exposed is not None:
            return
        if now - self._last_read < self.config.sockets_every_s:
            return
        container_id, image_id = str(info.get("Id") or ""), str(info.get("Image") or "")
        if not container_id:
            return
        self._last_read = now
        self._task = asyncio.create_task(self._read(container_id, image_id))

    async def _read(self, container_id: str, image_id: str) -> list[Listener] | None:
        if self.exposed is None:
            self.exposed = await image_exposed(self.docker, image_id) if image_id else []
        if not self.readable:
            return None
        try:
            return await read_listeners(self.docker, self.spec.name, container_id)
        except DockerOperationError as exc:
            self.readable = exc.status != 404  # no helper image on this server: EXPOSE is all there is
            return None
        except (DockerUnavailable, TimeoutError):
            return None  # the engine is slow or away: the next read may do

    async def close(self) -> None:
        """Leave a read still under way to finish on its own (it ends within ``HELPER_TIMEOUT_S`` and removes
        its helper): cancelled while the engine creates the helper, it would leave the helper behind."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            _finishing.add(task)
            task.add_done_callback(_finishing.discard)
