"""Durable pull consumers: ack after the handler commits, nak with backoff, dead-letter after N tries.

One durable consumer per (service, message type), named after the owning service, so a failing handler
never blocks another handler or another service. A long handler is kept alive with ``in_progress()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from berth_common.catalogue import REGISTRY, Message, model_for
from berth_common.envelope import Envelope
from berth_common.logging import bound, get_logger
from berth_common.tracing import continue_trace

if TYPE_CHECKING:
    from berth_common.bus.client import Bus

log = get_logger(__name__)


class TransientError(Exception):
    """Try again later: the message is nak'ed with backoff."""


class PermanentError(Exception):
    """Never going to succeed: the message goes straight to the dead-letter subject."""


@dataclass
class Delivery:
    """What a handler knows about the message besides its data."""

    envelope: Envelope
    headers: dict[str, str]
    attempt: int
    consumer: str
    _msg: Msg | None = field(default=None, repr=False)

    async def in_progress(self) -> None:
        if self._msg is not None:
            await self._msg.in_progress()


Handler = Callable[[Any, Delivery], Awaitable[None]]


def durable_name(service: str, type_: str) -> str:
    return f"{service}--{type_}".replace(".", "_").replace(">", "all").replace("*", "any")


@dataclass
class Consumer:
    bus: Bus
    service: str
    subject: str
    stream: str
    handler: Handler
    message_type: type[Message] | None
    max_deliver: int
    ack_wait_s: float
    backoff_s: list[float]
    batch: int = 10
    deliver_new_only: bool = False
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return durable_name(self.service, self.subject)

    async def start(self) -> None:
        cfg = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            filter_subject=self.subject,
            max_ack_pending=max(self.batch * 4, 64),
            deliver_policy=DeliverPolicy.NEW if self.deliver_new_only else DeliverPolicy.ALL,
        )
        self._psub = await self.bus.js.pull_subscribe(self.subject, durable=self.name, stream=self.stream, config=cfg)
        self._idle.set()
        self._task = asyncio.create_task(self._loop(), name=f"consumer:{self.name}")
        self._ready.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop fetching, let the in-flight handler finish, then unsubscribe."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._psub.fetch(self.batch, timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:  # connection hiccups: the client reconnects by itself
                if self._stopping.is_set():
                    break
                log.warning("fetch failed", consumer=self.name, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                self._idle.clear()
                try:
                    await self._process(msg)
                finally:
                    self._idle.set()

    async def _keepalive(self, msg: Msg) -> None:
        interval = max(self.ack_wait_s / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _process(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        headers = dict(msg.headers or {})
        try:
            envelope = Envelope.from_bytes(msg.data)
            data: Any = envelope.data
            if self.message_type is not None:
                data = self.message_type.model_validate(envelope.data)
            elif envelope.type in REGISTRY:
                data = model_for(envelope.type).model_validate(envelope.data)
        except (ValidationError, ValueError, KeyError) as exc:
            await self._dead_letter(msg, None, attempt, f"unparseable message: {exc}")
            return
        if attempt > self.max_deliver:
            # Delivered more often than allowed without a verdict (the handler kept crashing the process).
            await self._dead_letter(msg, envelope, attempt, "exceeded max deliveries without completing")
            return
        delivery = Delivery(envelope=envelope, headers=headers, attempt=attempt, consumer=self.name, _msg=msg)
        keepalive = asyncio.create_task(self._keepalive(msg))
        try:
            with (
                bound(message_id=envelope.id, message_type=envelope.type),
                continue_trace(f"handle {envelope.type}", headers, consumer=self.name),
            ):
                await self.handler(data, delivery)
        except PermanentError as exc:
            await self._dead_letter(msg, envelope, attempt, str(exc) or type(exc).__name__)
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_deliver:
                await self._dead_letter(msg, envelope, attempt, reason)
                return
            delay = self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)] if self.backoff_s else 1.0
            log.warning("handler failed, retrying", consumer=self.name, attempt=attempt, delay=delay, error=reason)
            with contextlib.suppress(Exception):
                await msg.nak(delay=delay)
            return
        finally:
            keepalive.cancel()
        await msg.ack_sync()

    async def _dead_letter(self, msg: Msg, envelope: Envelope | None, attempt: int, reason: str) -> None:
        log.error("message dead-lettered", consumer=self.name, subject=msg.subject, attempt=attempt, reason=reason)
        await self.bus.dead_letter(msg, envelope, consumer=self.name, deliveries=attempt, reason=reason)
        await msg.ack_sync()
