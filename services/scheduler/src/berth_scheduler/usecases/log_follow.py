"""``rpc.scheduler.follow_logs``: follow an application's replicas (or one database container) on every
server and publish their lines to the core NATS inbox the api named, until the api stops answering there.

The reply comes at once (how many containers are followed); one task then runs per follow:
- each container's log is followed through its server's Docker connection from ``since`` (the lines written
  between ``since`` and the engine's answer included); a container whose log ends (stopped, restarted) is
  followed again from just after its last line once it runs again, so no line is lost or sent twice;
- every ``alive_s`` the task asks ``<inbox>.alive``: no responder (the api's client went away, or the api
  itself) ends the follow at once, two unanswered asks in a row end it too; each time it also looks for new
  replicas of the application (a rollout's) and follows them;
- lines are published in batches (``FollowedLines``) at most ``lines_per_s`` a second on average; what
  comes faster is counted and reported as ``dropped`` (with the next batch, or alone once the follow is
  quiet), never queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from berth_common import labels
from berth_common.catalogue import FollowedLines, FollowLogsQuery, FollowLogsReply, RuntimeLogLine
from berth_common.catalogue.container_logs import ALIVE_SUFFIX
from berth_common.logging import get_logger
from berth_scheduler.adapters.docker_logs import followed, tty_of
from berth_scheduler.domain.runtime_logs import RateLimit, log_params
from berth_scheduler.usecases.runtime_logs import UNANSWERED, Source, is_running, sources_of

log = get_logger(__name__)
BATCH_LINES = 200
BATCH_BYTES = 256 * 1024
BATCH_WAIT_S = 0.05
MISSES = 2  # unanswered alive asks in a row that end a follow
# Lines already written after ``since`` when a container's log is (again) followed: the engine reads its
# last ``CATCH_UP`` lines and keeps those after ``since`` (cheap: from the end of the file).
CATCH_UP = 1000
DROPPED_REPORT_S = 0.5  # lines left out are reported with the next batch, or after this long without one


class Followers:
    """The follows this scheduler runs, by inbox (``active``), ``most`` at once; ``stop`` ends them all."""

    def __init__(self, fleet: Any, bus: Any, *, lines_per_s: float, alive_s: float, most: int = 100) -> None:
        self.fleet = fleet
        self.bus = bus
        self.lines_per_s = lines_per_s
        self.alive_s = alive_s
        self.most = most
        self.active: dict[str, asyncio.Task[None]] = {}

    async def start(self, query: FollowLogsQuery) -> FollowLogsReply:
        if len(self.active) >= self.most and query.inbox not in self.active:
            log.warning("log follow refused: too many at once", running=len(self.active))
            return FollowLogsReply(busy=True)
        found, unreachable = await self.sources(query)
        if query.application_id is None and not found and not unreachable:
            return FollowLogsReply(found=False)
        if query.inbox in self.active:
            return FollowLogsReply(containers=len(found), unreachable=unreachable)
        task = asyncio.create_task(self._run(query, found), name=f"follow-logs-{query.inbox}")
        self.active[query.inbox] = task
        task.add_done_callback(lambda _: self.active.pop(query.inbox, None))
        return FollowLogsReply(containers=len(found), unreachable=unreachable)

    async def stop(self) -> None:
        tasks = list(self.active.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sources(self, query: FollowLogsQuery) -> tuple[list[Source], dict[str, str]]:
        if query.application_id is not None:
            return await sources_of(self.fleet, query.team_id, query.application_id, query.service)
        assert query.container is not None
        try:
            docker = await self.fleet.docker(query.server_id)
            info = await docker.inspect(query.container)
        except UNANSWERED as exc:
            return [], {query.server_id: str(exc)[:300]}
        owner = ((info or {}).get("Config") or {}).get("Labels") or {}
        if info is None or owner.get(labels.TEAM) != query.team_id:
            return [], {}
        return [Source(query.server_id, query.container, "", tty_of(info), is_running(info))], {}

    async def _run(self, query: FollowLogsQuery, first: list[Source]) -> None:
        follow = _Follow(self, query)
        try:
            follow.add(first)
            await follow.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("log follow failed", inbox=query.inbox, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            await follow.close()
            log.info("log follow ended", inbox=query.inbox, application_id=query.application_id)


class _Follow:
    """One follow: a reader task per container, a queue of their lines, the publisher and the alive asks."""

    def __init__(self, owner: Followers, query: FollowLogsQuery) -> None:
        self.owner = owner
        self.query = query
        self.limit = RateLimit(owner.lines_per_s, max(owner.lines_per_s, 1.0))
        self.lines: asyncio.Queue[RuntimeLogLine] = asyncio.Queue()
        self.readers: dict[str, asyncio.Task[None]] = {}
        self.last: dict[str, Any] = {}  # container -> the time of its last line sent
        self.followed: set[str] = set()

    def add(self, sources: list[Source]) -> None:
        for source in sources:
            key = f"{source.server_id}/{source.container}"
            if key in self.followed and not source.running:
                continue  # its log ended with the container: read again only once it runs again
            self.followed.add(key)
            if key not in self.readers:
                task = asyncio.create_task(self._read(source, key))
                self.readers[key] = task
                task.add_done_callback(lambda _, k=key: self.readers.pop(k, None))  # type: ignore[misc]

    async def _read(self, source: Source, key: str) -> None:
        since = self.query.since
        if key in self.last:
            since = self.last[key] + timedelta(microseconds=1)
        loop = asyncio.get_running_loop()
        try:
            docker = await self.owner.fleet.docker(source.server_id)
            params = log_params(CATCH_UP if since is not None else 0, since, follow=True)
            async for found in followed(docker, source.container, params, tty=source.tty):
                for line in found:
                    if line.time is not None:
                        self.last[key] = line.time
                    if self.limit.allow(loop.time()):
                        self.lines.put_nowait(source.tagged(line))
        except UNANSWERED as exc:
            log.info("log follow of a container ended", container=source.container, reason=str(exc)[:200])

    async def run(self) -> None:
        publisher = asyncio.create_task(self._publish())
        try:
            misses = 0
            while misses < MISSES and not publisher.done():
                await asyncio.sleep(self.owner.alive_s)
                try:
                    await self.owner.bus.nc.request(self.query.inbox + ALIVE_SUFFIX, b"", timeout=self.owner.alive_s)
                    misses = 0
                except NoRespondersError:
                    return
                except (NatsTimeoutError, TimeoutError):
                    misses += 1
                    continue
                found, _ = await self.owner.sources(self.query)
                self.add(found)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher

    async def _publish(self) -> None:
        while True:
            try:
                batch = [await asyncio.wait_for(self.lines.get(), DROPPED_REPORT_S)]
            except TimeoutError:  # quiet: say what was left out, if anything
                if self.limit.dropped:
                    await self._send(FollowedLines(dropped=self.limit.take_dropped()))
                continue
            size = len(batch[0].line)
            deadline = asyncio.get_running_loop().time() + BATCH_WAIT_S
            while len(batch) < BATCH_LINES and size < BATCH_BYTES:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    line = await asyncio.wait_for(self.lines.get(), left)
                except TimeoutError:
                    break
                batch.append(line)
                size += len(line.line)
            await self._send(FollowedLines(lines=batch, dropped=self.limit.take_dropped()))

    async def _send(self, message: FollowedLines) -> None:
        await self.owner.bus.nc.publish(self.query.inbox, message.model_dump_json().encode())

    async def close(self) -> None:
        readers = list(self.readers.values())
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
