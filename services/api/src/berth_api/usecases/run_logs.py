"""A one-off run's log followed as Server-Sent Events, until the run ends.

The stream answers at once with a comment, then:
1. while the run is queued (no container yet), a keep-alive now and then while its row is read again;
2. once it has a container, the scheduler follows that one container (``rpc.scheduler.follow_logs``, the
   machinery of ``usecases/runtime_logs.py``): the lines written before the follow started first, then each
   new one, as ``event: line`` (the runtime logs' line object);
3. once the run's row says it finished (the scheduler recorded its container's exit), the lines still on
   their way are read until none came for ``DRAIN_S``, then one ``event: end`` carries the run (status,
   exit code, reason) and the stream ends.

A run that finished before it was asked sends its container's last lines and its ``end`` at once. A run
whose container is gone (only the newest are kept) sends only its ``end``; its ``last_lines`` stay in the
run. Lines are redacted of the application's secret values, as the runtime logs are, in the stream and in
the JSON tail (``tail``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import runs as repo
from berth_api.domain.applications import redact
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.usecases import Deps
from berth_api.usecases.runs import get_run, logs
from berth_api.usecases.runtime_logs import Follow, Window, application_secrets, open_follow, redacted
from berth_common.catalogue import ContainerLogLine, RuntimeLogLine
from berth_common.logging import get_logger

log = get_logger(__name__)
POLL_S = 0.25  # how often the run's row is read while it is queued or running
TAIL_ATTEMPTS = 3  # a tail the scheduler did not answer is asked again (a run's last lines matter)
DRAIN_S = 0.3  # once it finished: the stream ends after this long without a line
FINISHED = ("succeeded", "failed", "timed_out", "skipped", "cancelled")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Render = Callable[[dict[str, Any]], str]


def line_event(line: RuntimeLogLine, secrets: tuple[str, ...]) -> str:
    return f"event: line\ndata: {redacted(line, secrets).model_dump_json()}\n\n"


@dataclass
class RunFollow:
    """What the stream needs: the run as first read, how to render it for ``end``, the window asked."""

    deps: Deps
    principal: Principal
    run: dict[str, Any]
    window: Window
    render: Render
    secrets: tuple[str, ...]

    async def _row(self) -> dict[str, Any]:
        async with self.deps.sessionmaker() as s:
            row = await repo.get_run(s, self.principal.team_id, self.run["application_id"], self.run["id"])
        return row or self.run

    async def _tail(self, row: dict[str, Any]) -> list[RuntimeLogLine]:
        """The container's last lines in the window (none when it never started or is gone)."""
        for attempt in range(TAIL_ATTEMPTS):
            try:
                _, reply = await logs(self.deps, self.principal, row["application_id"], row["id"], self.window.tail)
                break
            except ProblemError as exc:
                if exc.status != 503 or attempt == TAIL_ATTEMPTS - 1:
                    log.info("run log without its tail", run_id=row["id"], status=exc.status)
                    return []
                await asyncio.sleep(POLL_S)  # the scheduler or the run's server did not answer: once more
        server = row["server_id"] or "local"
        lines = [
            RuntimeLogLine(replica=row["container"], server_id=server, stream=x.stream, time=x.time, line=x.line)
            for x in reply.lines
            if self.window.since is None or x.time is None or x.time >= self.window.since
        ]
        return sorted(lines, key=lambda x: x.time or EPOCH)  # stdout and stderr come apart: merged by time

    def _end(self, row: dict[str, Any]) -> str:
        return f"event: end\ndata: {self.render(row)}\n\n"

    async def events(self) -> AsyncIterator[str]:
        yield ": berth run log\n\n"
        keepalive = self.deps.settings.sse_keepalive_s
        row, idle = self.run, 0.0
        while row["started_at"] is None and row["status"] not in FINISHED:
            await asyncio.sleep(POLL_S)
            idle += POLL_S
            if idle >= keepalive:
                idle = 0.0
                yield ": keepalive\n\n"
            row = await self._row()
        follow = None if row["status"] in FINISHED else await self._open(row)
        if follow is None:
            for line in await self._tail(row):
                yield line_event(line, self.secrets)
            yield self._end(await self._row())
            return
        async for event in self._followed(follow):
            yield event

    async def _open(self, row: dict[str, Any]) -> Follow | None:
        """The scheduler's follow of the run's container (None: nothing to follow, the tail is all)."""
        target = {"team_id": self.principal.team_id, "server_id": row["server_id"] or "local"}
        target["container"] = row["container"]

        async def backlog() -> list[RuntimeLogLine]:
            return await self._tail(row)

        try:
            return await open_follow(self.deps, target, self.window, backlog, self.secrets)
        except ProblemError as exc:
            log.info("run log not followed", run_id=row["id"], status=exc.status)
            return None

    async def _followed(self, follow: Follow) -> AsyncIterator[str]:
        follow.started = True
        loop = asyncio.get_running_loop()
        try:
            for line in await follow.backlog():
                if line.time is None or line.time < follow.start:
                    yield line_event(line, self.secrets)
            row, checked, quiet, ended_at = self.run, loop.time(), loop.time(), None
            while True:
                try:
                    batch = await asyncio.wait_for(follow.received.get(), POLL_S)
                except TimeoutError:
                    batch = None
                now = loop.time()
                if batch is not None:
                    quiet = now
                    for note in follow.notes(batch):
                        yield note
                    for line in batch.lines:
                        yield line_event(line, self.secrets)
                elif ended_at is None and now - quiet >= self.deps.settings.sse_keepalive_s:
                    quiet = now
                    yield ": keepalive\n\n"
                if ended_at is None and now - checked >= POLL_S:
                    checked, row = now, await self._row()
                    if row["status"] in FINISHED:
                        ended_at = now
                if ended_at is not None and batch is None and now - max(ended_at, quiet) >= DRAIN_S:
                    break
            yield self._end(row)
        finally:
            await follow.close()


async def tail(
    deps: Deps, principal: Principal, application_id: str, run_id: str, lines: int
) -> tuple[dict[str, Any], list[ContainerLogLine]]:
    """The run and the last ``lines`` lines of its container, redacted of the application's secret values
    (``usecases/runs.logs``)."""
    row, reply = await logs(deps, principal, application_id, run_id, lines)
    secrets = await application_secrets(deps, principal, application_id)
    if not secrets:
        return row, reply.lines
    return row, [x.model_copy(update={"line": redact(x.line, secrets)}) for x in reply.lines]


async def follow_run(
    deps: Deps, principal: Principal, application_id: str, run_id: str, window: Window, render: Render
) -> RunFollow:
    """The follow of a run of the team's application (404 before anything is streamed: another team's or a
    missing run)."""
    run = await get_run(deps, principal, application_id, run_id)
    secrets = await application_secrets(deps, principal, application_id)
    return RunFollow(deps, principal, run, window, render, secrets)
