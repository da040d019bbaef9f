"""Units of work and the transactional outbox.

A unit is one transaction. Messages it emits are written to the outbox in that transaction and published
after the commit (and by the relay after a crash), each with a stable id, so JetStream de-duplicates a
second publish. Run for a message (``Transactions.run(..., delivery=...)``), the transaction also records
the message id, and a redelivered message finds its id and has no second effect
(``berth_common.db.consume`` builds bus handlers on this).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus.client import Bus, derived_id
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import Message
from berth_common.db.tables import outbox, processed_messages
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait
from berth_common.tracing import inject_headers

log = get_logger(__name__)


@dataclass
class Unit:
    """One unit of work: a session inside a transaction, plus the messages to publish after it commits."""

    session: AsyncSession
    bus: Bus
    delivery: Delivery | None = None
    staged: list[tuple[str, Envelope, dict[str, str]]] = field(default_factory=list)

    async def emit(self, message: Message, *, id: str | None = None, nats_subject: str | None = None) -> Envelope:
        """Stage ``message`` in the outbox; it is published only if the transaction commits.

        Without an explicit ``id`` the id is derived from the message being handled, the consumer
        handling it and the position among what it emits, so a retried handler emits the same ids (the
        publish is de-duplicated) while two services reacting to one event never collide. The id has a
        fixed length however long the causal chain grows.
        """
        env = self.stage(message, id=id, nats_subject=nats_subject)
        await write_outbox(self.session, [self], last_only=True)
        return env

    def stage(self, message: Message, *, id: str | None = None, nats_subject: str | None = None) -> Envelope:
        """``emit`` without writing the outbox row yet: ``write_outbox`` writes the rows of several units
        in one statement, which must happen before the commit."""
        if id is None and self.delivery is not None:
            id = derived_id(self.delivery.envelope.id, self.delivery.consumer, message.TYPE, str(len(self.staged)))
        env = self.bus.envelope(message, id=id)
        return self._stage_envelope(nats_subject or message.TYPE, env)

    async def emit_data(self, type_: str, data: dict[str, Any], *, id: str, schema_version: int = 1) -> Envelope:
        """``emit`` for a message known by its type only, ``data`` as its producer gave it: a schedule publishes
        the command it holds without parsing it (the catalogue limits which types it may be)."""
        env = Envelope(source=f"berth/{self.bus.service}", type=type_, schemaversion=schema_version, data=data, id=id)
        self._stage_envelope(type_, env)
        await write_outbox(self.session, [self], last_only=True)
        return env

    def _stage_envelope(self, subject: str, env: Envelope) -> Envelope:
        headers = inject_headers({"Nats-Msg-Id": env.id, "Ce-Type": env.type, "Ce-Source": env.source})
        self.staged.append((subject, env, headers))
        return env


async def write_outbox(session: AsyncSession, units: Sequence[Unit], *, last_only: bool = False) -> None:
    """Write the outbox rows of what ``units`` staged (rows already written are kept as they are)."""
    staged = [s for u in units for s in (u.staged[-1:] if last_only else u.staged)]
    if staged:
        rows = [{"id": e.id, "subject": sub, "envelope": e.to_bytes(), "headers": h} for sub, e, h in staged]
        await session.execute(insert(outbox).on_conflict_do_nothing(), rows)


async def publish_staged(bus: Bus, sessionmaker: async_sessionmaker[AsyncSession], unit: Unit) -> None:
    """After commit: publish what the unit staged and mark it published (the relay covers failures)."""
    for subject, env, headers in unit.staged:
        try:
            await bus.publish_envelope(subject, env, headers)
        except Exception as exc:  # the relay will publish it
            log.warning("outbox publish deferred", id=env.id, error=str(exc))
            return
        try:
            async with sessionmaker() as s, s.begin():
                await s.execute(sa.update(outbox).where(outbox.c.id == env.id).values(published_at=sa.func.now()))
        except Exception as exc:  # sent: the relay sends it again (the bus drops the duplicate) and marks it
            log.warning("outbox mark deferred", id=env.id, error=f"{type(exc).__name__}: {exc}")
            return


async def first_time(session: AsyncSession, delivery: Delivery) -> bool:
    """Record the delivered message id for its consumer; False when it was recorded before (a redelivery)."""
    first = await session.execute(
        insert(processed_messages)
        .values(consumer=delivery.consumer, message_id=delivery.envelope.id)
        .on_conflict_do_nothing()
        .returning(processed_messages.c.message_id)
    )
    return first.first() is not None


async def first_times(session: AsyncSession, deliveries: Sequence[Delivery]) -> set[tuple[str, str]]:
    """``first_time`` for several deliveries in one statement (a consumer handling messages in batches): the
    ``(consumer, message id)`` pairs recorded now; the others were recorded before (redeliveries)."""
    if not deliveries:
        return set()
    rows = [{"consumer": c, "message_id": m} for c, m in dict.fromkeys((d.consumer, d.envelope.id) for d in deliveries)]
    first = await session.execute(  # executemany form: one compiled statement, sent as multi-row inserts
        insert(processed_messages)
        .on_conflict_do_nothing()
        .returning(processed_messages.c.consumer, processed_messages.c.message_id),
        rows,
    )
    return {(str(r.consumer), str(r.message_id)) for r in first}


async def publish_units(bus: Bus, sessionmaker: async_sessionmaker[AsyncSession], units: Sequence[Unit]) -> None:
    """After one commit of several units (one transaction shared by a batch): publish what they staged (the
    units at once, each unit's messages in order), then mark it all published in one statement (the relay
    covers what a failure leaves)."""
    sent: list[str] = []
    rounds = max((len(u.staged) for u in units), default=0)
    for i in range(rounds):
        wave = [u.staged[i] for u in units if len(u.staged) > i]
        results = await asyncio.gather(*(bus.publish_envelope(*s) for s in wave), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        sent += [s[1].id for s, r in zip(wave, results, strict=True) if not isinstance(r, BaseException)]
        if failed:  # the relay will publish the rest
            log.warning("outbox publish deferred", error=str(failed[0]), published=len(sent))
            break
    if sent:
        async with sessionmaker() as s, s.begin():
            await s.execute(sa.update(outbox).where(outbox.c.id.in_(sent)).values(published_at=sa.func.now()))


class Transactions:
    """Runs units of work: one transaction each, then what it staged is published.

    How the staged messages go out after the commit is :meth:`publish`'s (here: each at once, in order); a
    service that wants them sent differently (the scheduler's rollouts send events from a background task)
    overrides it.
    """

    def __init__(self, bus: Bus, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker

    async def run(
        self,
        body: Callable[[Unit], Awaitable[Any]],
        *,
        delivery: Delivery | None = None,
        on_commit: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run ``body`` in a transaction; after the commit call ``on_commit(result)``, then publish what it
        staged.

        With a ``delivery`` (a bus handler): its message id is recorded in the same transaction, and a
        message already recorded is skipped (``body`` does not run, ``on_commit`` is not called; returns
        None). When ``body`` raises, the transaction rolls back and nothing is called or published.
        """
        async with self.sessionmaker() as session:
            async with session.begin():
                if delivery is not None and not await first_time(session, delivery):
                    log.info("duplicate message skipped", consumer=delivery.consumer, id=delivery.envelope.id)
                    return None
                unit = Unit(session=session, bus=self.bus, delivery=delivery)
                result = await body(unit)
        if on_commit is not None:
            on_commit(result)
        await self.publish(unit)
        return result

    async def publish(self, unit: Unit) -> None:
        await publish_staged(self.bus, self.sessionmaker, unit)


async def run_unit(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: Callable[[Unit], Awaitable[Any]],
) -> Any:
    """Run ``body`` in a transaction outside any message (e.g. an API request) with outbox semantics."""
    return await Transactions(bus, sessionmaker).run(body)


class OutboxRelay:
    """Publishes outbox rows left unpublished by a crash between commit and publish."""

    def __init__(self, bus: Bus, sessionmaker: async_sessionmaker[AsyncSession], interval_s: float = 2.0) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def relay_once(self, older_than_s: float = 1.0) -> int:
        sent = 0
        async with self.sessionmaker() as s, s.begin():
            rows = (
                await s.execute(
                    sa.select(outbox.c.id, outbox.c.subject, outbox.c.envelope, outbox.c.headers)
                    .where(outbox.c.published_at.is_(None))
                    .where(outbox.c.created_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_s))
                    .order_by(outbox.c.created_at)
                    .limit(100)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self.bus.publish_raw(row.subject, row.envelope, dict(row.headers))
                await s.execute(sa.update(outbox).where(outbox.c.id == row.id).values(published_at=sa.func.now()))
                sent += 1
            await s.execute(
                sa.delete(outbox).where(outbox.c.published_at < sa.func.now() - sa.text("interval '1 day'"))
            )
        return sent

    async def _loop(self) -> None:
        while True:
            try:
                await self.relay_once()
            except Exception as exc:
                log.warning("outbox relay failed", error=str(exc))
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
