"""An application's (or a database's) own log lines: the last ones as JSON, or followed as Server-Sent Events.

The scheduler reads the engines (``rpc.scheduler.runtime_logs`` / ``container_logs``) after the api checked
the application or database is the caller's team's (another team's is a 404, as a missing one); the team goes
in the query too, and the scheduler reads only containers labelled with it.

A follow (``rpc.scheduler.follow_logs``) works over core NATS: the api opens an inbox, subscribes to it and
to ``<inbox>.alive``, and asks the scheduler to follow from now (``start``); the scheduler publishes batches
of lines there and asks ``<inbox>.alive`` every few seconds. The api then sends the last lines written
before ``start`` (the tail, merged), then the followed ones as they come, with a keep-alive comment when
idle. When the client goes away the generator ends, the subscriptions go, the scheduler's next ask finds
no responder and its follow ends. A stream whose response never started answers ``alive`` only for
``UNSTARTED_S``.

Every line is redacted of the application's secret variable values before it leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.domain.applications import redact
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing, open_variables
from berth_api.usecases.observability import RETRY_AFTER_S, ask, unavailable
from berth_common.bus import subscriptions_confirmed
from berth_common.catalogue import (
    FollowedLines,
    FollowLogsQuery,
    FollowLogsReply,
    RuntimeLogLine,
    RuntimeLogsQuery,
    RuntimeLogsReply,
)
from berth_common.catalogue.container_logs import ALIVE_SUFFIX
from berth_common.logging import get_logger

log = get_logger(__name__)
SCHEDULER = "scheduler"
UNSTARTED_S = 10.0
MAX_PENDING = 1000  # batches held for a client that reads slower than lines come
FIELDS = {"tail": "/query/tail", "since": "/query/since", "until": "/query/until", "service": "/query/service"}

Backlog = Callable[[], Awaitable[list[RuntimeLogLine]]]


@dataclass(frozen=True)
class Window:
    """What the caller asked for: the last ``tail`` lines, between ``since`` and ``until`` (naive: UTC)."""

    tail: int = 200
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ProblemError(
                422,
                "The end of the window comes before its start (/query/until).",
                errors=[{"loc": "/query/until", "detail": "before since", "type": "value_error"}],
            )


async def application_secrets(deps: Deps, principal: Principal, application_id: str) -> tuple[str, ...]:
    """The application's secret values to redact (404: not an application of the team)."""
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        stored = (await apps_repo.variables_of(s, [application_id]))[application_id]
    opened = open_variables(deps, application_id, stored)
    return tuple(v.value for variables in opened.values() for v in variables if v.secret and v.value)


def redacted(line: RuntimeLogLine, secrets: tuple[str, ...]) -> RuntimeLogLine:
    return line.model_copy(update={"line": redact(line.line, secrets)}) if secrets else line


def _server_down(reply: RuntimeLogsReply) -> None:
    if "local" in reply.unreachable:
        raise ProblemError(
            503,
            f"The control plane's Docker engine cannot be reached: {reply.unreachable['local']}. Try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


async def tail(
    deps: Deps, principal: Principal, application_id: str, service: str, window: Window
) -> tuple[list[RuntimeLogLine], RuntimeLogsReply]:
    """The last lines of the application's replicas (every server), oldest first, redacted."""
    secrets = await application_secrets(deps, principal, application_id)
    reply = await _tail_reply(deps, principal, application_id, service, window)
    return [redacted(line, secrets) for line in reply.lines], reply


async def _tail_reply(
    deps: Deps, principal: Principal, application_id: str, service: str, window: Window
) -> RuntimeLogsReply:
    query = RuntimeLogsQuery(
        team_id=principal.team_id,
        application_id=application_id,
        service=service,
        tail=window.tail,
        since=window.since,
        until=window.until,
    )
    reply = await ask(
        deps, SCHEDULER, query, RuntimeLogsReply, fields=FIELDS, timeout=max(deps.settings.rpc_timeout_s, 30)
    )
    _server_down(reply)
    return reply


# --- following ----------------------------------------------------------------------------------------


@dataclass
class Follow:
    """An open follow: the inbox's subscriptions, the lines received, the tail to send first."""

    deps: Deps
    inbox: str
    start: datetime
    window: Window
    backlog: Backlog
    secrets: tuple[str, ...]
    received: asyncio.Queue[FollowedLines] = field(default_factory=lambda: asyncio.Queue(MAX_PENDING))
    lost: int = 0  # lines that came while MAX_PENDING batches waited for a slow client
    subscriptions: list[Any] = field(default_factory=list)
    started: bool = False
    opened_at: float = 0.0

    def alive(self) -> bool:
        return self.started or asyncio.get_running_loop().time() - self.opened_at < UNSTARTED_S

    async def close(self) -> None:
        for sub in self.subscriptions:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection went meanwhile: nothing is left to undo
                log.info("log follow unsubscribe failed", error=type(exc).__name__)
        self.subscriptions.clear()

    def _shown(self, line: RuntimeLogLine) -> bool:
        return self.window.until is None or line.time is None or line.time <= self.window.until

    def _event(self, line: RuntimeLogLine) -> str:
        return f"event: line\ndata: {redacted(line, self.secrets).model_dump_json()}\n\n"

    def notes(self, batch: FollowedLines) -> list[str]:
        """The comments saying how many lines were left out before ``batch``: over the rate limit, or
        because the client read too slowly."""
        out = [f": {batch.dropped} lines left out (over the rate limit)\n\n"] if batch.dropped else []
        if self.lost:
            lost, self.lost = self.lost, 0
            out.append(f": {lost} lines left out (the client read too slowly)\n\n")
        return out

    async def events(self) -> AsyncIterator[str]:
        """The stream: the tail before ``start``, then the followed lines until the client goes away (or the
        window's ``until`` passed)."""
        self.started = True
        try:
            yield ": berth runtime log\n\n"
            for line in await self.backlog():
                if line.time is None or line.time < self.start:
                    yield self._event(line)
            keepalive = self.deps.settings.sse_keepalive_s
            while self.window.until is None or datetime.now(UTC) <= self.window.until:
                wait = keepalive
                if self.window.until is not None:
                    wait = min(wait, max(0.0, (self.window.until - datetime.now(UTC)).total_seconds()) + 0.5)
                try:
                    batch = await asyncio.wait_for(self.received.get(), wait)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                for note in self.notes(batch):
                    yield note
                for line in batch.lines:
                    if self._shown(line):
                        yield self._event(line)
        finally:
            await self.close()


async def open_follow(
    deps: Deps, query: dict[str, Any], window: Window, backlog: Backlog, secrets: tuple[str, ...]
) -> Follow:
    """Subscribe to a new inbox and ask the scheduler to follow there (``query``: the team and the target);
    404 when the scheduler found nothing of the team to follow, 503 when it cannot be asked."""
    if not deps.bus.connected:
        raise unavailable(SCHEDULER, "the bus cannot be reached")
    nc = deps.bus.nc
    now = datetime.now(UTC)
    start = max(now, window.since) if window.since is not None else now
    follow = Follow(deps, nc.new_inbox(), start, window, backlog, secrets, opened_at=asyncio.get_running_loop().time())

    async def on_lines(msg: Any) -> None:
        try:
            batch = FollowedLines.model_validate_json(msg.data)
        except ValueError:
            log.warning("log follow: a batch that is not lines", inbox=follow.inbox)
            return
        try:
            follow.received.put_nowait(batch)
        except asyncio.QueueFull:
            follow.lost += len(batch.lines) + batch.dropped

    async def on_alive(msg: Any) -> None:
        if follow.alive():
            await msg.respond(b"ok")
        else:  # the response never started streaming: nobody will read these lines
            await follow.close()

    follow.subscriptions.append(await nc.subscribe(follow.inbox, cb=on_lines))
    follow.subscriptions.append(await nc.subscribe(follow.inbox + ALIVE_SUFFIX, cb=on_alive))
    try:
        await subscriptions_confirmed(nc)
        asked = FollowLogsQuery(inbox=follow.inbox, since=start, **query)
        reply = await ask(deps, SCHEDULER, asked, FollowLogsReply, fields=FIELDS)
        if reply.busy:
            raise ProblemError(
                503,
                "The scheduler follows as many logs as it may right now. Try again shortly.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if not reply.found:
            raise ProblemError(
                404, "There is nothing to follow (no container on its server: not made yet, or removed)."
            )
        if "local" in reply.unreachable:
            raise ProblemError(
                503,
                f"The control plane's Docker engine cannot be reached: {reply.unreachable['local']}.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
    except BaseException:
        await follow.close()
        raise
    return follow


async def follow_application(
    deps: Deps, principal: Principal, application_id: str, service: str, window: Window
) -> Follow:
    secrets = await application_secrets(deps, principal, application_id)

    async def backlog() -> list[RuntimeLogLine]:
        try:
            reply = await _tail_reply(deps, principal, application_id, service, window)
        except ProblemError as exc:
            log.warning("log follow without its tail", application_id=application_id, status=exc.status)
            return []
        return reply.lines

    target = {"team_id": principal.team_id, "application_id": application_id, "service": service}
    return await open_follow(deps, target, window, backlog, secrets)
