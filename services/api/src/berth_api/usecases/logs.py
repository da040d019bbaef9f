"""A deployment's logs: all lines so far as text, or a live Server-Sent Events stream.

The event stream answers at once (a comment and ``event: ready``), then sends the backlog and the live
lines as they are published (one ``event: log`` each, its ``id`` the stream sequence, so a client that
reconnects with ``Last-Event-ID`` misses nothing), a keep-alive comment when idle, and ``event: end`` once
the deployment finished and its last line was sent. Every line is redacted of the application's secret
values (those of the deployment's snapshot and the current ones) before it leaves. The lines are the
``evt.log.line`` messages on ``log.<deployment_id>``, read from the log stream (``adapters/logstream.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import deployments as repo
from berth_api.adapters.logstream import Entry, LogReader, last_sequence
from berth_api.domain.applications import open_spec, redact, snapshot_aad
from berth_api.domain.deployments import TERMINAL, status_of
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.usecases import Deps
from berth_api.usecases.applications import open_variables
from berth_api.usecases.deployments import deployment_missing
from berth_common.logging import get_logger

log = get_logger(__name__)
DRAIN_WAIT_S = 2.0  # after the end: how long to wait for each line still on its way
REASON_WAIT_S = 2.0  # a failure seen by its progress event: how long its reason may take to arrive
TEXT_WAIT_S = 5.0


@dataclass(frozen=True)
class LogSource:
    deployment_id: str
    state: str
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"LogSource({self.deployment_id!r}, {self.state!r})"


async def open_source(deps: Deps, principal: Principal, deployment_id: str) -> LogSource:
    """The deployment (404 if not the team's) and every secret value to redact from its lines."""
    async with deps.sessionmaker() as s:
        row = await repo.get_deployment(s, principal.team_id, deployment_id)
        if row is None:
            raise deployment_missing(principal, deployment_id)
        stored = (await apps_repo.variables_of(s, [row["application_id"]]))[row["application_id"]]
    secrets: list[str] = []
    try:
        secrets += open_spec(row["spec"], deps.box.open_text, snapshot_aad(deployment_id)).secret_values()
    except Exception as exc:  # an unreadable snapshot: redact what is readable
        log.warning("snapshot secrets unreadable", deployment_id=deployment_id, error=type(exc).__name__)
    for variables in open_variables(deps, row["application_id"], stored).values():
        secrets += [v.value for v in variables if v.secret and v.value]
    return LogSource(deployment_id, row["state"], tuple(secrets))


async def newest(deps: Deps, source: LogSource) -> int:
    """The stream position of the newest line so far (0: none); 503 when the bus cannot be asked."""
    try:
        if not deps.bus.connected:
            raise ConnectionError("not connected")
        return await last_sequence(deps.bus.js, source.deployment_id)
    except Exception as exc:
        log.warning("log stream unavailable", deployment_id=source.deployment_id, error=f"{type(exc).__name__}: {exc}")
        raise ProblemError(503, "The log stream is unavailable right now (the bus cannot be reached).") from None


async def text(deps: Deps, source: LogSource, last: int) -> AsyncIterator[str]:
    """Every line published up to stream position ``last`` (from :func:`newest`), in order, one per line."""
    if last == 0:
        return
    async with LogReader(deps.bus.js, source.deployment_id) as reader:
        while True:
            entry = await reader.next(TEXT_WAIT_S)
            if entry is None:
                log.warning("log backlog incomplete", deployment_id=source.deployment_id, last=last)
                return
            yield redact(entry.line.line, source.secrets) + "\n"
            if entry.sequence >= last:
                return


def _event(name: str, data: dict[str, Any], id_: int | None = None) -> str:
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _log_event(entry: Entry, source: LogSource) -> str:
    data = {
        "seq": entry.line.seq,
        "stream": entry.line.stream,
        "line": redact(entry.line.line, source.secrets),
        "time": entry.time.isoformat(),
    }
    return _event("log", data, entry.sequence)


async def _state(deps: Deps, deployment_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_deployment_any(s, deployment_id)
    if row is None:  # deleted with its application meanwhile
        return {"deployment_id": deployment_id, "state": "cancelled", "status": "cancelled", "reason": "deleted"}
    return {
        "deployment_id": deployment_id,
        "state": row["state"],
        "status": status_of(row["state"]),
        "step": row["step"],
        "reason": row["reason"],
    }


async def events(deps: Deps, source: LogSource, after: int = 0) -> AsyncIterator[str]:
    """The Server-Sent Events stream; ``after``: the last stream sequence the client has (Last-Event-ID)."""
    settings = deps.settings
    yield ": berth deployment log\nretry: 2000\n\n"
    state = await _state(deps, source.deployment_id)
    yield _event("ready", state)
    loop_time = asyncio.get_running_loop().time
    seen = after
    async with LogReader(deps.bus.js, source.deployment_id, after=after) as reader:
        next_poll = loop_time() + settings.sse_state_poll_s
        next_keepalive = loop_time() + settings.sse_keepalive_s
        while state["state"] not in TERMINAL:
            wait = max(0.0, min(next_poll, next_keepalive) - loop_time())
            entry = await reader.next(wait)
            if entry is not None:
                seen = entry.sequence
                next_keepalive = loop_time() + settings.sse_keepalive_s
                yield _log_event(entry, source)
            now = loop_time()
            if now >= next_keepalive:
                next_keepalive = now + settings.sse_keepalive_s
                yield ": keep-alive\n\n"
            if now >= next_poll:
                next_poll = now + settings.sse_state_poll_s
                state = await _state(deps, source.deployment_id)
        # Finished: send what is left up to the newest line, then say so.
        last = await last_sequence(deps.bus.js, source.deployment_id)
        while seen < last:
            entry = await reader.next(DRAIN_WAIT_S)
            if entry is None:
                break
            seen = entry.sequence
            yield _log_event(entry, source)
    yield _event("end", await _with_reason(deps, state))


async def _with_reason(deps: Deps, state: dict[str, Any]) -> dict[str, Any]:
    """The final state with its reason: the progress event that ends a failed deployment may be recorded a
    moment before the ``failed`` event that carries the reason, and the stream's last word names it."""
    loop_time = asyncio.get_running_loop().time
    deadline = loop_time() + REASON_WAIT_S
    while state["status"] != "succeeded" and not state.get("reason") and loop_time() < deadline:
        await asyncio.sleep(0.1)
        state = await _state(deps, state["deployment_id"])
    return state
