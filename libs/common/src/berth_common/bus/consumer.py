"""Durable pull consumers: ack after the handler commits, nak with backoff, dead-letter after N tries.

One durable consumer per (service, message type), named after the owning service, so a failing handler
never blocks another handler or another service. Messages of a fetched batch are handled one at a time,
in order; while one runs, it and the ones still waiting are kept alive with ``in_progress()``, so a long
handler is not redelivered to another instance. ``num_delivered`` (the server's count, including
deliveries cut short by a crash or a shutdown) is the attempt number: after ``max_deliver`` the message
is moved to ``dlq.<subject>`` and ``evt.bus.dead_lettered`` is published, then it is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import ValidationError

from berth_common.bus import fetching
from berth_common.bus.fetching import count_messages, end_if_idle, fetch_mark, finish, hand_back, release
from berth_common.bus.streams import CMD_STREAM, DLQ_STREAM
from berth_common.catalogue import REGISTRY, Message, model_for
from berth_common.envelope import Envelope
from berth_common.logging import bound, get_logger
from berth_common.tracing import continue_trace
from berth_common.values import RECEIVED

log = get_logger(__name__)


class TransientError(Exception):
    """Try again later: the message is nak'ed with backoff."""


class PermanentError(Exception):
    """Never going to succeed: the message goes straight to the dead-letter subject."""


class ConsumerConflictError(RuntimeError):
    """Another service already consumes this command: a command has exactly one owner (work queue)."""


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


def parse_received(model: type[Message], data: Any) -> Message:
    """A received message. One whose consumer checks the shared value rules itself
    (``CONSUMER_CHECKS_VALUES``) keeps a bad value for that check (``berth_common.values.RECEIVED``)."""
    return model.model_validate(data, context=RECEIVED if model.CONSUMER_CHECKS_VALUES else None)


def durable_name(service: str, type_: str) -> str:
    return f"{service}--{type_}".replace(".", "_").replace(">", "all").replace("*", "any")


class ConsumerHost(Protocol):
    """What a consumer needs from the bus that runs it (``Bus`` is one): so this module does not import it."""

    @property
    def js(self) -> JetStreamContext: ...

    @property
    def connected(self) -> bool: ...

    async def redeclare(self) -> None:
        """Declare the streams again (the server lost them)."""

    async def dead_letter(
        self, msg: Msg, envelope: Envelope | None, *, consumer: str, deliveries: int, reason: str
    ) -> None:
        """Move ``msg`` to ``dlq.<subject>`` and announce it with ``evt.bus.dead_lettered``."""


@dataclass
class Consumer:
    bus: ConsumerHost
    service: str
    subject: str
    stream: str
    handler: Handler
    message_type: type[Message] | None
    max_deliver: int
    ack_wait_s: float
    backoff_s: list[float]
    batch: int = 10
    fetch_wait_s: float = 1.0
    concurrency: int = 1
    deliver_new_only: bool = False
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: int = 0  # messages fetched and not finished (concurrency > 1)
    _fetching: asyncio.Task[list[Msg]] | None = None  # the fetch waiting now, if any
    _fetch_mark: int = 0  # what the subscription had received when that fetch began
    _last_fetched: list[Msg] | None = None  # what the last fetch got (sets the next one's size); None: no fetch yet

    @property
    def name(self) -> str:
        return durable_name(self.service, self.subject)

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            # No server-side limit: Berth counts deliveries itself and dead-letters at max_deliver. A server
            # limit would silently strand the message instead (never redelivered, never removed).
            max_deliver=-1,
            filter_subject=self.subject,
            # Messages nak'ed with a backoff count as pending: leave room so failures do not stall the rest.
            max_ack_pending=max(self.batch * 4, 1000),
            # A work queue only accepts "deliver all" (and a command must be handled anyway).
            deliver_policy=DeliverPolicy.NEW
            if self.deliver_new_only and self.stream != CMD_STREAM
            else DeliverPolicy.ALL,
        )

    async def _ensure(self) -> None:
        """Create the durable consumer, or bring an existing one to the current settings.

        ``pull_subscribe`` alone keeps an existing consumer as it is, so a changed ``ack_wait`` would
        never apply. The deliver policy cannot change on a live consumer: the existing one is kept.
        """
        cfg = self.config()
        try:
            info = await self.bus.js.consumer_info(self.stream, self.name)
        except NotFoundError:
            info = None
        if info is not None:
            cur = info.config
            cfg.deliver_policy = cur.deliver_policy
            if (cur.ack_wait, cur.max_ack_pending, cur.max_deliver) == (cfg.ack_wait, cfg.max_ack_pending, -1):
                return
            log.info("updating consumer settings", consumer=self.name, ack_wait=cfg.ack_wait)
        try:
            await self.bus.js.add_consumer(self.stream, cfg)
        except BadRequestError as exc:
            if exc.err_code == 10100:  # filtered consumer not unique on workqueue stream
                raise ConsumerConflictError(
                    f"{self.subject} already has a consumer on the work queue {self.stream}: a command has "
                    f"exactly one owning service ({exc})"
                ) from exc
            raise

    async def start(self) -> None:
        await self._ensure()
        self._psub = await self.bus.js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        count_messages(self._psub)
        self._task = asyncio.create_task(self._loop(), name=f"consumer:{self.name}")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop fetching, let the in-flight handler finish (nak the rest of its batch), then unsubscribe.

        A fetch still waiting with nothing received is ended at once rather than waited out (up to
        ``fetch_wait_s``); what the server hands to its pull request meanwhile is given back (nak) before
        the subscription goes, so it is delivered again at once, not after ack_wait.
        """
        self._stopping.set()
        if self._task is not None:
            await finish(self._task, lambda: end_if_idle(self._fetching, self._psub, self._fetch_mark), timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(release(self._psub), min(timeout, 5.0))
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        """Fetch and handle. One at a time, a batch is handled before the next fetch. With ``concurrency``
        > 1, fetching goes on while handlers run, as long as fewer than ``concurrency`` messages are in
        flight: a handler that waits (a route whose lock another transaction holds) never holds up a
        message fetched after it."""
        running: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                room = self.batch
                if self.concurrency > 1:
                    room = min(self.batch, self.concurrency - self._in_flight)
                    if room <= 0:
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        continue
                try:
                    msgs = await self._fetch(room)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # connection hiccups: the client reconnects by itself
                    if self._stopping.is_set():
                        break
                    log.warning("fetch failed", consumer=self.name, error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)
                    await self._recover()
                    continue
                if msgs is None:  # ended by ``stop``
                    break
                if self.concurrency == 1:
                    await self._handle_batch(msgs)
                    continue
                self._in_flight += len(msgs)
                task = asyncio.create_task(self._handle_batch(msgs), name=f"consumer-batch:{self.name}")
                running.add(task)
                task.add_done_callback(running.discard)
            if running:  # stopping: the handlers in flight finish (what has not started is handed back)
                await asyncio.gather(*running, return_exceptions=True)
        except asyncio.CancelledError:
            for task in list(running):
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _fetch(self, room: int) -> list[Msg] | None:
        """Fetch up to ``room`` messages, no more than the server said were pending (``request_size``): a
        fetch asked for more than are coming may hold what it got until its wait ends. None when ``stop``
        ended the fetch while it waited idle."""
        self._fetch_mark = fetch_mark(self._psub)
        size = fetching.request_size(room, self._last_fetched)
        self._last_fetched = []
        fetch = asyncio.create_task(self._psub.fetch(size, timeout=self.fetch_wait_s))
        self._fetching = fetch
        try:
            self._last_fetched = await fetch
            return self._last_fetched
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if fetch.cancelled() and (current is None or not current.cancelling()):
                return None
            raise
        finally:
            self._fetching = None

    async def _recover(self) -> None:
        """After a failed fetch: if the durable (or its stream) is gone from the server, put it back.

        A deleted consumer, or a server that lost its store, would otherwise leave this service fetching
        in vain forever while it reports itself ready.
        """
        if not self.bus.connected:
            return  # the client reconnects by itself; nothing to repair yet
        try:
            try:
                await self._ensure()
            except NotFoundError:  # the stream itself is gone
                await self.bus.redeclare()
                await self._ensure()
            log.info("consumer checked after a failed fetch", consumer=self.name)
        except Exception as exc:
            log.warning("consumer repair failed", consumer=self.name, error=f"{type(exc).__name__}: {exc}")

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        """Handle a fetched batch (in order, or ``concurrency`` at a time); the messages not finished yet are
        kept alive meanwhile, and handed back at once when the consumer stops."""
        waiting = list(msgs)
        keepalive = asyncio.create_task(self._keepalive(waiting))
        limit = asyncio.Semaphore(self.concurrency)

        async def one(msg: Msg) -> None:
            async with limit:
                try:
                    if self._stopping.is_set():
                        # Shutting down: hand it back at once instead of holding it until ack_wait.
                        await hand_back(msg)
                        return
                    await self._process(msg)
                except asyncio.CancelledError:
                    await hand_back(msg)
                    raise
                except Exception as exc:
                    # Never let one message kill the loop: it comes back after ack_wait.
                    log.error("message handling failed", consumer=self.name, error=f"{type(exc).__name__}: {exc}")
                finally:
                    with contextlib.suppress(ValueError):
                        waiting.remove(msg)
                    if self.concurrency > 1:
                        self._in_flight -= 1

        try:
            if self.concurrency == 1:
                for msg in msgs:
                    await one(msg)
            else:
                await asyncio.gather(*(one(msg) for msg in msgs))
        except asyncio.CancelledError:
            for msg in list(waiting):  # not started: hand back now rather than after ack_wait
                await hand_back(msg)
            raise
        finally:
            keepalive.cancel()

    async def _keepalive(self, waiting: list[Msg]) -> None:
        """Tell the server every ack_wait/3 that the messages of the batch are still being worked on."""
        interval = max(self.ack_wait_s / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            for msg in list(waiting):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _process(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        headers = dict(msg.headers or {})
        envelope: Envelope | None = None
        try:
            envelope = Envelope.from_bytes(msg.data)
            data: Any = envelope.data
            if self.message_type is not None:
                data = parse_received(self.message_type, envelope.data)
            elif envelope.type in REGISTRY:
                data = parse_received(model_for(envelope.type), envelope.data)
        except (ValidationError, ValueError, KeyError) as exc:
            await self._dead_letter(msg, envelope, attempt, f"unparseable message: {unparseable(exc)}")
            return
        if attempt > self.max_deliver:
            # Delivered more often than allowed without a verdict (the handler kept crashing the process).
            await self._dead_letter(msg, envelope, attempt, "exceeded max deliveries without completing")
            return
        delivery = Delivery(envelope=envelope, headers=headers, attempt=attempt, consumer=self.name, _msg=msg)
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
            await hand_back(msg)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_deliver:
                await self._dead_letter(msg, envelope, attempt, reason)
                return
            delay = self._delay(attempt)
            log.warning("handler failed, retrying", consumer=self.name, attempt=attempt, delay=delay, error=reason)
            await hand_back(msg, delay)
            return
        await msg.ack_sync()

    def _delay(self, attempt: int) -> float:
        return self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)] if self.backoff_s else 1.0

    async def _dead_letter(self, msg: Msg, envelope: Envelope | None, attempt: int, reason: str) -> None:
        if self.stream == DLQ_STREAM:
            # A consumer of dead letters failed in turn: stop here rather than build dlq.dlq.<subject>.
            log.error("dead letter handling failed, dropped", consumer=self.name, subject=msg.subject, reason=reason)
            await msg.term()
            return
        log.error("message dead-lettered", consumer=self.name, subject=msg.subject, attempt=attempt, reason=reason)
        try:
            await self.bus.dead_letter(msg, envelope, consumer=self.name, deliveries=attempt, reason=reason)
        except Exception as exc:
            # Not moved: keep it (both publishes carry stable ids, so a retry does not duplicate them).
            log.error("dead-lettering failed, will retry", consumer=self.name, error=f"{type(exc).__name__}: {exc}")
            await hand_back(msg, self._delay(attempt))
            return
        await msg.ack_sync()


def unparseable(exc: Exception) -> str:
    """Why a message did not parse, without the values it carried (pydantic's own text repeats each wrong
    input, which may be a sealed secret): the field and the rule, per error."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        where = [f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in errors[:10]]
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        return f"{exc.error_count()} error(s) for {exc.title}: " + "; ".join(where) + more
    return f"{type(exc).__name__}: {exc}"
