"""Berth's own readiness checks: HTTP GET of the health path (2xx) for web, a command for workers.

A web replica with more routed ports (``domain/port_routes.py``) is ready once each of them answers a
``GET /`` over HTTP too (any status below 500: its health path is its own port's).

A worker whose health command fails is told with the command's exit code and output; one whose Docker
healthcheck (a compose service's) makes Docker report it unhealthy fails at once, with the last check's, and
so does one whose health command cannot run in its image (not found, not executable).

A replica is ready only when the check passes (a one-shot compose service, ``completes``: also once it
exited 0); a container that keeps exiting (crash loop), or whose check does not pass before the deadline, is
reported with what was seen last, in words (:mod:`domain.readiness`), and its last log lines. While a web
replica fails its GET, :class:`Diagnosis` looks at its listening sockets and image, and ends the wait early
when it will not pass (another port, only other ports exposed, the same error answer over and over).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError, host_port_of
from berth_scheduler.adapters.readiness_diagnosis import Diagnosis, describe_error
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.readiness import (
    ReadinessConfig,
    Seen,
    answer_text,
    docker_health_failure,
    exit_text,
    health_command_hopeless,
    health_command_text,
    health_exec_refused,
)

NOT_RUNNING = Seen(False, "the container is not running", "down")


class NotReadyError(Exception):
    """The replica did not become ready; the message is meant for a person."""


class ReadinessChecker:
    def __init__(self, docker: DockerExecutor, config: ReadinessConfig | None = None) -> None:
        self.docker = docker
        self.config = config or ReadinessConfig()
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The HTTP client, made at the first probe: a client holds a parsed CA bundle, which a scheduler that
        deploys nothing does not need."""
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def probe_http(self, host_port: int, path: str, timeout_s: float | None = None) -> tuple[bool, str]:
        """One GET; (passed, what happened)."""
        seen = await self.probe(host_port, path, timeout_s)
        return seen.ok, seen.text

    async def probe(self, host_port: int, path: str, timeout_s: float | None = None) -> Seen:
        """One GET on a published loopback port, told in words (:func:`describe_error`)."""
        url = f"http://127.0.0.1:{host_port}{path}"
        timeout = timeout_s or self.config.attempt_timeout_s
        try:
            resp = await self._http.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return describe_error(path, exc, timeout)
        if 200 <= resp.status_code < 300:
            return Seen(True, f"GET {path} answered {resp.status_code}", "ok", resp.status_code)
        return Seen(False, answer_text(path, resp.status_code, resp.content), "status", resp.status_code)

    def _crashed(self, info: dict[str, Any] | None) -> str | None:
        """Why the container is not going to become ready (crash loop, exited), or None."""
        if info is None:
            return "the container disappeared"
        state = info.get("State") or {}
        restarts = int(info.get("RestartCount") or 0)
        policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        if restarts >= self.config.crash_restarts:
            return f"the container keeps crashing (restarted {restarts} times, last exit code {state.get('ExitCode')})"
        if state.get("Status") in ("exited", "dead") and (policy == "no" or state.get("OOMKilled")):
            return f"the container {exit_text(state)}"
        return None

    async def _explain(self, spec: ContainerSpec, why: str) -> NotReadyError:
        logs = (await self.docker.logs(spec.name, tail=15)).strip()
        tail = f"; last log lines:\n{logs}" if logs else ""
        return NotReadyError(f"replica {spec.name} ({spec.service} #{spec.replica}) is not ready: {why}{tail}")

    async def wait_ready(self, spec: ContainerSpec, deadline: float) -> None:
        """Return once the replica passes; raise :class:`NotReadyError` at ``deadline`` (wall clock)."""
        if spec.kind == "web":
            await self._wait_web(spec, deadline)
        else:
            await self._wait_worker(spec, deadline)

    def _next_pause(self, pause: float) -> float:
        return min(pause * 1.5, self.config.interval_s)

    async def _look(self, spec: ContainerSpec, deadline: float) -> tuple[dict[str, Any] | None, Seen]:
        """One look at a web replica: (inspection, what the GET saw). With a pinned host port the inspection
        and the GET go out together (one round trip of waiting instead of two); without one the port is read
        from the inspection first."""
        assert spec.health_path is not None and spec.container_port is not None
        timeout = min(self.config.attempt_timeout_s, max(deadline - time.time(), 0.1))
        if spec.host_port is not None:
            info, seen = await asyncio.gather(
                self.docker.inspect(spec.name), self.probe(spec.host_port, spec.health_path, timeout)
            )
            return info, seen
        info = await self.docker.inspect(spec.name)
        port = host_port_of(info or {}, spec.container_port)
        if port is None:
            return info, NOT_RUNNING
        return info, await self.probe(port, spec.health_path, timeout)

    async def _wait_web(self, spec: ContainerSpec, deadline: float) -> None:
        diagnosis = Diagnosis(self.docker, spec, self.config)

        async def look() -> str | None:
            info, seen = await self._look(spec, deadline)
            crash = self._crashed(info)
            if crash:
                raise await self._explain(spec, crash)
            if not ((info or {}).get("State") or {}).get("Running"):
                return NOT_RUNNING.text
            if seen.ok:
                return None  # passed only while Docker reports it running (and not crashing)
            verdict, said = diagnosis.after(info or {}, seen)
            if verdict is not None:
                raise await self._explain(spec, verdict)
            return said

        try:
            await self._poll(spec, deadline, look, f"no 2xx from GET {spec.health_path}")
        finally:
            await diagnosis.close()
        for port, _ in spec.more_ports:  # each more routed port answers too (``domain/port_routes.py``)
            await self._wait_port(spec, port, deadline)

    async def _wait_port(self, spec: ContainerSpec, port: int, deadline: float) -> None:
        """Until a more routed ``port`` of a web replica answers ``GET /`` over HTTP (any status below 500:
        the service's health path is its own port's)."""

        async def look() -> str | None:
            timeout = min(self.config.attempt_timeout_s, max(deadline - time.time(), 0.1))
            seen = await self.answer_on(spec, port, timeout)
            return None if seen.ok or (seen.status is not None and seen.status < 500) else seen.text

        await self._poll(spec, deadline, look, f"port {port} gave no HTTP answer to GET /")

    async def answer_on(self, spec: ContainerSpec, port: int, timeout_s: float) -> Seen:
        """One ``GET /`` at a more routed container ``port`` of a web replica (on ``local``: its host port)."""
        host = dict(spec.more_ports).get(port)
        return NOT_RUNNING if host is None else await self.probe(host, "/", timeout_s)

    async def _wait_worker(self, spec: ContainerSpec, deadline: float) -> None:
        settle_until = time.time() + self.config.worker_settle_s

        async def look() -> str | None:
            found = await self.docker.inspect(spec.name)
            state = (found or {}).get("State") or {}
            if spec.completes and state.get("Status") == "exited" and state.get("ExitCode") == 0:
                return None  # a one-shot service that completed successfully
            crash = self._crashed(found)
            if crash:
                raise await self._explain(spec, crash)
            info = found or {}
            if not state.get("Running"):
                return "the container is not running"
            unhealthy = docker_health_failure(state.get("Health"))  # a Docker healthcheck (compose) gave up
            if unhealthy is not None:
                raise await self._explain(spec, unhealthy)
            if spec.health_command is None:
                if time.time() >= settle_until and int(info.get("RestartCount") or 0) == 0:
                    return None
                return "running, settling"
            try:
                result = await self.docker.exec(
                    spec.name,
                    list(spec.health_command),
                    min(self.config.exec_timeout_s, max(deadline - time.time(), 1.0)),
                )
            except DockerOperationError as exc:
                refused = health_exec_refused(str(exc))
                if refused is not None:
                    raise await self._explain(spec, refused) from None
                return f"health command could not run: {exc}"
            if result.exit_code == 0:
                return None
            hopeless = health_command_hopeless(result.exit_code, result.output)
            if hopeless is not None:
                raise await self._explain(spec, hopeless)
            return health_command_text(result.exit_code, result.output)

        await self._poll(spec, deadline, look, "the health check did not pass")

    async def _poll(
        self, spec: ContainerSpec, deadline: float, look: Callable[[], Awaitable[str | None]], failed: str
    ) -> None:
        """Look, with growing pauses, until ``look`` passes (None) or the deadline passes; then fail with
        ``failed`` and what the last look saw."""
        pause = min(self.config.first_interval_s, self.config.interval_s)
        while (last := await look()) is not None:
            if time.time() >= deadline:
                raise await self._explain(spec, f"{failed} before the deadline ({last})")
            await asyncio.sleep(pause)
            pause = self._next_pause(pause)
