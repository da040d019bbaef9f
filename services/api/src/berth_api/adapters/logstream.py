"""Read a deployment's log lines from stream BERTH_LOG (subject ``log.<deployment_id>``), in stream order.

One ephemeral ordered consumer per reader (no acks, flow control, gap detection by the client); it is
unsubscribed and deleted when the reader closes, and the server drops it after a short inactivity anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from berth_common.bus.streams import LOG_STREAM
from berth_common.catalogue import LogLine
from berth_common.envelope import Envelope
from berth_common.logging import get_logger

log = get_logger(__name__)
INACTIVE_THRESHOLD_S = 10.0
_cleanups: set[asyncio.Task[None]] = set()  # strong references until each cleanup ends


def subject(deployment_id: str) -> str:
    return f"log.{deployment_id}"


@dataclass(frozen=True)
class Entry:
    """One line and where it sits: ``sequence`` is the stream sequence (an SSE event id)."""

    sequence: int
    line: LogLine
    time: datetime


async def last_sequence(js: JetStreamContext, deployment_id: str) -> int:
    """The stream sequence of the deployment's newest line; 0 when it has none."""
    try:
        msg = await js.get_last_msg(LOG_STREAM, subject(deployment_id))
    except NotFoundError:
        return 0
    return int(msg.seq or 0)


class LogReader:
    """``async with LogReader(js, id, after=n) as r``: lines after stream sequence ``n`` (0: all)."""

    def __init__(self, js: JetStreamContext, deployment_id: str, *, after: int = 0) -> None:
        self.js = js
        self.deployment_id = deployment_id
        self.after = after
        self._sub: JetStreamContext.PushSubscription | None = None

    async def __aenter__(self) -> LogReader:
        if self.after > 0:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.after + 1)
            policy = None
        else:
            config, policy = None, DeliverPolicy.ALL
        self._sub = await self.js.subscribe(
            subject(self.deployment_id),
            stream=LOG_STREAM,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            inactive_threshold=INACTIVE_THRESHOLD_S,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def next(self, timeout: float) -> Entry | None:
        """The next line, or None when none came within ``timeout`` seconds."""
        assert self._sub is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                msg = await self._sub.next_msg(timeout=remaining)
            except (NatsTimeoutError, TimeoutError):
                return None
            try:
                env = Envelope.from_bytes(msg.data)
                line = LogLine.model_validate(env.data)
            except (ValidationError, ValueError):
                log.warning("unreadable log line skipped", deployment_id=self.deployment_id)
                continue
            return Entry(sequence=int(msg.metadata.sequence.stream), line=line, time=env.time)

    async def close(self) -> None:
        """Unsubscribe and delete the consumer (shielded: it runs even when the request is cancelled)."""
        sub, self._sub = self._sub, None
        if sub is None:
            return

        async def cleanup() -> None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(LOG_STREAM, sub._consumer)

        task = asyncio.create_task(cleanup())
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)
        await asyncio.shield(task)
