"""Sending what is queued: one asyncio task, one HTTP client and one rate bucket per channel.

The deliveries ``notify`` and ``rpc.notifier.channel.test`` queue are sent here. A worker sends its channel's due deliveries one at a time, so a dead or slow endpoint only ever holds up
its own channel; every request has a total timeout. The enqueue path wakes the channel's worker after
commit; a sweeper wakes channels with due rows (retries, grouped rows, rows another process queued),
gives back claims left by a crashed process and prunes the old log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import random
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.logging import get_logger
from berth_common.outbound import OutboundPolicy
from berth_common.outbound_net import guarded_client
from berth_notifier.adapters import queue, store
from berth_notifier.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_notifier.adapters.senders import SendConfig, SendError, send
from berth_notifier.domain.policy import TokenBucket, backoff
from berth_notifier.settings import NotifierSettings

log = get_logger(__name__)
IDLE_EXIT_S = 60.0


def now_utc() -> datetime:
    return datetime.now(UTC)


class ChannelWorker:
    def __init__(self, dispatcher: Dispatcher, channel_id: str) -> None:
        self.d = dispatcher
        self.channel_id = channel_id
        s = dispatcher.settings
        self.bucket = TokenBucket(burst=s.notify_burst, rate_per_s=s.notify_rate_per_minute / 60.0)
        self.woken = asyncio.Event()
        self.client: httpx.AsyncClient | None = None
        self.paused_until = 0.0  # the endpoint said "slow down" (429 with Retry-After): the whole channel waits
        # Run in the service's context, not in that of the event that woke the channel first (its message
        # id and trace would be stamped on every later log line of this worker).
        self.task = asyncio.create_task(self._run(), name=f"notify:{channel_id}", context=dispatcher.context.copy())

    def wake(self) -> None:
        self.woken.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if woken earlier."""
        try:
            await asyncio.wait_for(self.woken.wait(), max(seconds, 0.0))
            return True
        except TimeoutError:
            return False

    async def _run(self) -> None:
        try:
            while True:
                self.woken.clear()
                now = time.monotonic()
                wait = max(self.bucket.wait_time(now), self.paused_until - now)
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                async with self.d.sessionmaker() as s, s.begin():
                    row = await queue.claim_next(s, self.channel_id, now_utc())
                    due = None if row is not None else await queue.next_due(s, self.channel_id)
                if row is not None:
                    self.bucket.take(time.monotonic())
                    await self._deliver(row)
                    continue
                if due is None:
                    if not await self._sleep(IDLE_EXIT_S):
                        self.d.forget(self)  # before any await: a wake from now on starts a new worker
                        return
                else:
                    await self._sleep((due - now_utc()).total_seconds())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database hiccup: the sweeper restarts the worker
            log.warning("channel worker stopped", channel_id=self.channel_id, error=f"{type(exc).__name__}")
        finally:
            self.d.forget(self)
            if self.client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.client.aclose())

    def _http(self, policy: OutboundPolicy) -> httpx.AsyncClient:
        """The channel's client (one team's channel: one policy for its life)."""
        if self.client is None:
            timeout = self.d.config.timeout_s
            self.client = guarded_client(
                policy,
                verify=self.d.tls,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            )
        return self.client

    async def _deliver(self, row: Any) -> None:
        async with self.d.sessionmaker() as s:
            channel = await store.get_channel_any_team(s, self.channel_id)
        if channel is None:
            return  # deleted meanwhile (its deliveries went with it)
        if not channel.enabled and not row.is_test:
            await self._finish(row, SendError("channel is disabled", retryable=False))
            return
        try:
            secrets = self.d.box.decrypt(channel.secret_blob, store.aad(channel.team_id, channel.id))
        except SecretUnavailableError as exc:
            await self._finish(row, SendError(str(exc), retryable=True))
            return
        started = time.monotonic()
        config = dataclasses.replace(self.d.config, policy=self.d.settings.notify_policy(channel.team_id))
        try:
            await send(
                row.attempts,
                channel.kind,
                dict(channel.settings),
                secrets,
                queue.notice_of(row),
                row.id,
                self._http(config.policy),
                config,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._release(row)), 2.0)
            raise
        except SendError as exc:
            await self._finish(row, exc)
            return
        async with self.d.sessionmaker() as s, s.begin():
            await queue.mark_delivered(s, row.id, now_utc())
        log.info(
            "notification delivered",
            delivery_id=row.id,
            channel_id=self.channel_id,
            kind=channel.kind,
            event_type=row.event_type,
            count=row.count,
            attempt=row.attempts,
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def _release(self, row: Any) -> None:
        async with self.d.sessionmaker() as s, s.begin():
            await queue.mark_failed(s, row, "", now_utc(), release=True)

    async def _finish(self, row: Any, exc: SendError) -> None:
        retry_at = None
        if exc.retryable:
            s_ = self.d.settings
            delay = backoff(row.attempts, s_.notify_backoff_base_s, s_.notify_backoff_max_s, random.random())  # noqa: S311
            if exc.retry_after_s is not None:
                delay = max(delay, exc.retry_after_s)
                self.paused_until = time.monotonic() + exc.retry_after_s
            retry_at = now_utc() + timedelta(seconds=delay)
        async with self.d.sessionmaker() as s, s.begin():
            status = await queue.mark_failed(s, row, exc.message, retry_at)
        log.warning(
            "notification attempt failed",
            delivery_id=row.id,
            channel_id=self.channel_id,
            attempt=row.attempts,
            status=status,
            error=exc.message,
        )


class Dispatcher:
    def __init__(
        self, settings: NotifierSettings, sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.box = box
        self.config = SendConfig(
            timeout_s=settings.notify_timeout_s,
            policy=settings.notify_policy(None),  # each channel's team widens it (``_deliver``)
            telegram_api_url=settings.notify_telegram_api_url,
            smtp_ca_file=settings.notify_smtp_ca_file,
            max_retry_after_s=settings.notify_backoff_max_s,
        )
        self.context = contextvars.copy_context()
        self.workers: dict[str, ChannelWorker] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._last_prune = 0.0

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """One TLS context for every channel's client (building one per client costs CPU), made at the first
        delivery: the parsed CA bundle stays resident, and an idle notifier does not need it."""
        return ssl.create_default_context(cafile=certifi.where())

    def wake(self, channel_ids: Iterable[str]) -> None:
        for channel_id in channel_ids:
            worker = self.workers.get(channel_id)
            if worker is None or worker.task.done():
                worker = self.workers[channel_id] = ChannelWorker(self, channel_id)
            worker.wake()

    def forget(self, worker: ChannelWorker) -> None:
        if self.workers.get(worker.channel_id) is worker:
            del self.workers[worker.channel_id]

    async def sweep_once(self) -> None:
        now = now_utc()
        stuck_after = timedelta(seconds=self.settings.notify_timeout_s * 2 + 30)
        async with self.sessionmaker() as s, s.begin():
            await queue.recover_stuck(s, now - stuck_after)
            due = await queue.channels_due(s, now)
        self.wake(c for c in due if c not in self.workers)
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            async with self.sessionmaker() as s, s.begin():
                pruned = await queue.prune(s, now - timedelta(days=self.settings.notify_log_days))
            if pruned:
                log.info("delivery log pruned", rows=pruned)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("delivery sweep failed", error=type(exc).__name__)
            await asyncio.sleep(self.settings.notify_sweep_interval_s)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="notify:sweeper")

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values()]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()
