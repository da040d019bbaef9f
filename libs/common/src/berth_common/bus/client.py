"""The Bus: one NATS connection per service, publishing with de-duplication, consumers and queries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from pydantic import BaseModel

from berth_common.bus.consumer import Consumer, Handler
from berth_common.bus.permissions import inbox_prefix
from berth_common.bus.streams import DEAD_LETTER_PREFIX, StreamSpec, declare_streams, default_streams, stream_for
from berth_common.catalogue import BusDeadLettered, Message
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_common.tracing import continue_trace, inject_headers

log = get_logger(__name__)
R = TypeVar("R", bound=BaseModel)


class ServiceUnavailableError(RuntimeError):
    """A query found no service answering (down or not started) or it did not answer in time."""


class QueryFailedError(RuntimeError):
    """The service answered the query with an error (its handler raised)."""


def derived_id(*parts: str) -> str:
    """A message id derived from what caused it: the same causes give the same id, always 32 hex chars."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def nats_servers(url: str) -> list[str]:
    """The servers ``BERTH_NATS_URL`` names: one URL, or several separated by commas (the nodes of a NATS
    cluster; the client connects to any of them and fails over to the others)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("BERTH_NATS_URL names no server")
    return servers


def rpc_subject(service: str, name: str) -> str:
    return f"rpc.{service}.{name}"


async def subscriptions_confirmed(nc: NATS) -> None:
    """Return once the server has registered every subscription made so far on ``nc``.

    nats-py queues a SUB in its pending buffer for its flusher task, but ``flush()`` writes its PING straight
    to the socket, so the PONG of a single flush can come back before the SUB was even sent (a request made
    right after then got "no responders" in about 4% of tries on a loaded machine). The first flush lets the
    flusher write the buffer; the second PING follows the SUB on the wire, so its PONG confirms it.
    """
    await nc.flush()
    await nc.flush()


class Bus:
    def __init__(
        self,
        service: str,
        url: str,
        *,
        max_deliver: int = 5,
        ack_wait_s: float = 30.0,
        fetch_wait_s: float = 1.0,
        backoff_s: list[float] | None = None,
        rpc_timeout_s: float = 5.0,
        streams: list[StreamSpec] | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.service = service
        self.url = url
        # The bus identity (``berth_common.bus.permissions``); None: anonymous (a server without users).
        self.user = user
        self._password = password
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self.fetch_wait_s = fetch_wait_s
        self.backoff_s = backoff_s if backoff_s is not None else [0.5, 2.0, 5.0, 15.0]
        self.rpc_timeout_s = rpc_timeout_s
        self.streams = streams if streams is not None else default_streams()
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._consumers: list[Consumer] = []
        self._responders: list[Any] = []
        self._query_tasks: set[asyncio.Task[None]] = set()

    # --- connection --------------------------------------------------------------------------------

    async def connect(self, *, declare: bool = True) -> None:
        """Connect to any of the servers ``url`` lists (as ``user`` when set: replies and deliveries then come
        to its own inbox prefix, the only one it may subscribe to) and declare the streams. On a lost
        connection the client reconnects, to another node of a cluster when its own is gone."""
        identity: dict[str, Any] = {}
        if self.user:
            identity = {"user": self.user, "password": self._password or "", "inbox_prefix": inbox_prefix(self.user)}
        self._nc = await nats.connect(
            servers=nats_servers(self.url),
            name=f"berth-{self.service}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            allow_reconnect=True,
            **identity,
        )
        self._js = self._nc.jetstream()
        if declare:
            try:
                await declare_streams(self._js, self.streams)
            except BaseException:
                await self._nc.close()
                self._nc = self._js = None
                raise

    async def redeclare(self) -> None:
        """Declare the streams again (after the server lost them); refuses a differing one as at start."""
        await declare_streams(self.js, self.streams)

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("bus is not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    @property
    def consumers_running(self) -> bool:
        """Every consumer's fetch loop is alive (readiness)."""
        return all(c.running for c in self._consumers)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def close(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: stop fetching, let in-flight handlers finish, drain the connection."""
        await asyncio.gather(*(c.stop(timeout) for c in self._consumers), return_exceptions=True)
        self._consumers.clear()
        if self._query_tasks:  # queries being answered finish before the connection drains
            await asyncio.wait(set(self._query_tasks), timeout=min(timeout, 10.0))
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._nc = None
        self._js = None

    # --- publishing --------------------------------------------------------------------------------

    def envelope(self, message: Message, *, id: str | None = None, subject: str | None = None) -> Envelope:
        kwargs: dict[str, Any] = {}
        if id:
            kwargs["id"] = id
        return Envelope(
            source=f"berth/{self.service}",
            type=message.TYPE,
            subject=subject,
            schemaversion=message.SCHEMA_VERSION,
            data=message.model_dump(mode="json"),
            **kwargs,
        )

    async def publish(
        self,
        message: Message,
        *,
        id: str | None = None,
        subject: str | None = None,
        nats_subject: str | None = None,
    ) -> Envelope:
        """Publish to JetStream with ``Nats-Msg-Id`` = envelope id (the server drops duplicates).

        ``id`` makes the publish idempotent across retries (derive it from the state change it reports).
        """
        env = self.envelope(message, id=id, subject=subject)
        headers = inject_headers({"Nats-Msg-Id": env.id, "Ce-Type": env.type, "Ce-Source": env.source})
        await self.publish_raw(nats_subject or message.TYPE, env.to_bytes(), headers)
        return env

    async def publish_envelope(self, subject: str, env: Envelope, headers: dict[str, str] | None = None) -> None:
        hdrs = {"Nats-Msg-Id": env.id, **(headers or {})}
        await self.publish_raw(subject, env.to_bytes(), hdrs)

    async def publish_raw(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Publish bytes to JetStream as they are (``headers`` should carry ``Nats-Msg-Id``).

        Retried once when the acknowledgement does not come (lost across a reconnect) and once when no
        stream takes the subject (the server lost its streams: they are declared again). The message id
        makes a retry safe: the server drops a second copy.
        """
        redeclared = timed_out = False
        while True:
            try:
                await self.js.publish(subject, payload, headers=headers)
                return
            except NoStreamResponseError:
                if redeclared:
                    raise
                redeclared = True
                log.warning("no stream for subject, declaring streams again", subject=subject)
                await self.redeclare()
            except NatsTimeoutError:
                if timed_out:
                    raise
                timed_out = True
                log.warning("publish not acknowledged, retrying", subject=subject, id=headers.get("Nats-Msg-Id"))

    async def dead_letter(
        self, msg: Msg, envelope: Envelope | None, *, consumer: str, deliveries: int, reason: str
    ) -> None:
        original = msg.subject
        hdrs = {k: v for k, v in (msg.headers or {}).items() if k != "Nats-Msg-Id"}
        hdrs.update({"Berth-Dead-Letter-Reason": reason[:500].replace("\n", " "), "Berth-Consumer": consumer})
        # Stable ids (a retried dead-lettering is de-duplicated) of bounded length, whatever the original's.
        origin = envelope.id if envelope else f"seq:{msg.metadata.sequence.stream}"
        msg_id = f"dlq-{derived_id(consumer, origin)}"
        hdrs["Nats-Msg-Id"] = msg_id
        await self.publish_raw(f"{DEAD_LETTER_PREFIX}{original}", msg.data, hdrs)
        if original == BusDeadLettered.TYPE:
            return  # no event about a failed dead-letter event: its consumer would fail on it again, forever
        event = BusDeadLettered(
            original_subject=original,
            original_id=envelope.id if envelope else None,
            consumer=consumer,
            deliveries=deliveries,
            reason=reason[:2000],
        )
        await self.publish(event, id=f"evt-{msg_id}")

    # --- consuming ---------------------------------------------------------------------------------

    async def consume(
        self,
        message_type: type[Message] | str,
        handler: Handler,
        *,
        durable_service: str | None = None,
        batch: int = 10,
        new_only: bool = False,
        concurrency: int = 1,
    ) -> Consumer:
        """Start a durable pull consumer for one message type (or a subject pattern) of this service.

        ``concurrency`` > 1 runs up to that many handlers of a fetched batch at once (their order is then not
        kept): for handlers that wait on something slow and are independent of each other.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if isinstance(message_type, str):
            subject, model = message_type, None
        else:
            subject, model = message_type.TYPE, message_type
        stream = stream_for(subject)
        consumer = Consumer(
            bus=self,
            service=durable_service or self.service,
            subject=subject,
            stream=stream,
            handler=handler,
            message_type=model,
            max_deliver=self.max_deliver,
            ack_wait_s=self.ack_wait_s,
            fetch_wait_s=self.fetch_wait_s,
            backoff_s=self.backoff_s,
            batch=max(batch, concurrency),
            deliver_new_only=new_only,
            concurrency=concurrency,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    # --- request / reply ---------------------------------------------------------------------------

    async def serve(
        self, name: str, handler: Callable[[dict[str, Any]], Awaitable[BaseModel]], *, concurrency: int = 32
    ) -> None:
        """Answer queries on ``rpc.<this service>.<name>`` (core NATS, queue group per service).

        Each query is answered in its own task (at most ``concurrency`` at once), so one slow query never
        holds up the others on the same subject.
        """
        limit = asyncio.Semaphore(concurrency)

        async def on_request(msg: Msg) -> None:
            task = asyncio.create_task(answer(msg))
            self._query_tasks.add(task)
            task.add_done_callback(self._query_tasks.discard)

        async def answer(msg: Msg) -> None:
            async with limit:
                await respond(msg)

        async def respond(msg: Msg) -> None:
            try:
                env = Envelope.from_bytes(msg.data)
                with continue_trace(f"rpc {name}", msg.headers):
                    reply = await handler(env.data)
                await msg.respond(b'{"ok":true,"data":' + reply.model_dump_json().encode() + b"}")
            except Exception as exc:
                log.warning("query failed", query=name, error=str(exc))
                err = Envelope(source=f"berth/{self.service}", type="rpc.error", data={"error": str(exc)[:500]})
                await msg.respond(b'{"ok":false,"data":' + err.model_dump_json().encode() + b"}")

        sub = await self.nc.subscribe(rpc_subject(self.service, name), queue=self.service, cb=on_request)
        await subscriptions_confirmed(self.nc)  # the server knows the responder: no false "no responders"
        self._responders.append(sub)

    async def request(
        self,
        service: str,
        name: str,
        query: Message,
        reply_model: type[R],
        *,
        timeout: float | None = None,
    ) -> R:
        env = self.envelope(query)
        headers = inject_headers({})
        subject = rpc_subject(service, name)
        try:
            resp = await self.nc.request(
                subject, env.to_bytes(), timeout=timeout or self.rpc_timeout_s, headers=headers
            )
        except NoRespondersError:
            raise ServiceUnavailableError(f"service {service!r} is not running (no responder on {subject})") from None
        except (NatsTimeoutError, TimeoutError):
            raise ServiceUnavailableError(
                f"service {service!r} did not answer {subject} within {timeout or self.rpc_timeout_s}s"
            ) from None
        try:
            body = json.loads(resp.data)
        except ValueError:
            raise QueryFailedError(f"{subject} answered with something that is not JSON") from None
        if not body.get("ok"):
            raise QueryFailedError(f"{subject} failed: {body.get('data', {}).get('data', {}).get('error')}")
        return reply_model.model_validate(body["data"])
