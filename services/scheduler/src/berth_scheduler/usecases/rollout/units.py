"""Units of work of the rollouts: one transaction, then what it emitted goes out without holding up the step.

Like ``berth_common.db.Transactions`` (messages staged in the outbox, in the transaction), but after the
commit only the commands are published at once: they start work elsewhere (proxy-sync waits for its route
command). Events and deploy log lines are handed to one background publisher that sends them in commit
order (pipelined: sent together, their acknowledgements awaited together) and marks them published with
one update per burst, so a rollout step never waits for a round trip to the bus or to the database per
event. What the publisher has not sent when the process dies stays in the outbox and the relay publishes
it.

The scheduler's bus handlers run in the same transactions (``berth_common.db.consume_once``: the message
id recorded in the transaction), so a handler's events never hold up its ack or the rollout it wakes, and
``emit_all`` stages several messages with one outbox insert.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import Message
from berth_common.db.tables import outbox
from berth_common.db.unit import Transactions, Unit
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_common.tracing import inject_headers

log = get_logger(__name__)
Staged = list[tuple[str, Envelope, dict[str, str]]]
ACK_TIMEOUT_S = 5.0


async def emit_all(unit: Unit, items: Sequence[tuple[Message, str, str | None]]) -> None:
    """``Unit.emit`` for several messages (``(message, id, nats subject or None)``) in one outbox insert."""
    rows = []
    for message, id_, nats_subject in items:
        env = unit.bus.envelope(message, id=id_)
        subject = nats_subject or message.TYPE
        headers = inject_headers({"Nats-Msg-Id": env.id, "Ce-Type": env.type, "Ce-Source": env.source})
        rows.append({"id": env.id, "subject": subject, "envelope": env.to_bytes(), "headers": headers})
        unit.staged.append((subject, env, headers))
    if rows:
        await unit.session.execute(insert(outbox).values(rows).on_conflict_do_nothing())


class RolloutTransactions(Transactions):
    """Transactions whose commands are published at the commit and whose events go out in the background."""

    def __init__(self, bus: Bus, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(bus, sessionmaker)
        self._queue: asyncio.Queue[Staged] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, unit: Unit) -> None:
        """Publish the unit's commands now; queue its events for the background publisher."""
        commands = [m for m in unit.staged if m[1].type.startswith("cmd.")]
        events = [m for m in unit.staged if not m[1].type.startswith("cmd.")]
        if commands:
            await self._publish(commands)
        if events:
            self._queue.put_nowait(events)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._loop(), name="rollout-event-publisher")

    async def _publish(self, staged: Staged, *, pipelined: bool = False) -> None:
        sent = await self._send_pipelined(staged) if pipelined else []
        if not sent:
            sent = await self._send_one_by_one(staged)
        if sent:
            try:
                async with self.sessionmaker() as s, s.begin():
                    await s.execute(sa.update(outbox).where(outbox.c.id.in_(sent)).values(published_at=sa.func.now()))
            except Exception as exc:  # published already; the relay may send them again (deduplicated by id)
                log.warning("outbox not marked published", count=len(sent), error=str(exc))

    async def _send_one_by_one(self, staged: Staged) -> list[str]:
        sent = []
        for subject, env, headers in staged:
            try:
                await self.bus.publish_envelope(subject, env, headers)
            except Exception as exc:  # the relay will publish it (and what follows, in order)
                log.warning("outbox publish deferred", id=env.id, error=str(exc))
                break
            sent.append(env.id)
        return sent

    async def _send_pipelined(self, staged: Staged) -> list[str]:
        """Every message sent in order without waiting for each acknowledgement, then all of them awaited:
        one round trip for a burst instead of one per message. On any trouble, nothing counts as sent and
        the caller sends them again one by one (JetStream drops the copies by message id)."""
        futures: list[asyncio.Future[Any]] = []
        try:
            for subject, env, headers in staged:
                hdrs = {"Nats-Msg-Id": env.id, **headers}
                futures.append(await self.bus.js.publish_async(subject, env.to_bytes(), headers=hdrs))
            await asyncio.wait_for(asyncio.gather(*futures), ACK_TIMEOUT_S)
        except Exception as exc:
            for f in futures:
                f.cancel()
            log.info("pipelined publish fell back to one by one", error=f"{type(exc).__name__}: {exc}")
            return []
        return [env.id for _, env, _ in staged]

    async def _loop(self) -> None:
        while not self._queue.empty():
            batch: Staged = []
            while not self._queue.empty():  # every unit committed meanwhile, in commit order
                batch += self._queue.get_nowait()
                self._queue.task_done()
            await self._publish(batch, pipelined=True)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event was published (or ``timeout``); then nothing runs in the background."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
