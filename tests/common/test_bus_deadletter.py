"""Poison messages end in ``dlq.<subject>`` with an ``evt.bus.dead_lettered`` event, and stop coming back."""

from __future__ import annotations

import asyncio
import itertools
import time

from berth_common.bus import Delivery, PermanentError, TransientError
from berth_common.bus.consumer import durable_name
from berth_common.bus.streams import CMD_STREAM, DLQ_STREAM, EVT_STREAM
from berth_common.catalogue import BusDeadLettered, PingService, ServicePinged
from tests.support.bus_helpers import Collector, connected_bus, consumer_info, stream_messages, wait_until

DLQ_SUBJECT = f"dlq.{PingService.TYPE}"


async def _dlq_and_events(url: str) -> tuple[Collector, Collector]:
    return await Collector().start(url, DLQ_SUBJECT), await Collector().start(url, BusDeadLettered.TYPE)


async def _assert_gone(bus, seen: list[int], count: int, wait: float = 1.0) -> None:
    """The original is acked: not redelivered, no longer in the work queue, nothing pending."""
    await asyncio.sleep(wait)
    assert len(seen) == count
    info = await consumer_info(bus, CMD_STREAM, "scheduler", PingService.TYPE)
    assert info.num_ack_pending == 0
    assert await stream_messages(bus, CMD_STREAM) == 0


async def test_handler_failing_every_time_is_dead_lettered_after_max_deliver(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=3, backoff_s=[0.1, 0.2])
    dlq, events = await _dlq_and_events(nats_server.url)
    attempts: list[int] = []

    async def poison(msg: PingService, d: Delivery) -> None:
        attempts.append(d.attempt)
        raise ValueError("cannot handle this one")

    await worker.consume(PingService, poison)
    env = await api.publish(PingService(nonce="poison"))
    await wait_until(lambda: dlq.items and events.items, timeout=10)
    assert attempts == [1, 2, 3]

    body, headers = dlq.items[0]
    assert body["id"] == env.id and body["data"] == {"nonce": "poison"}  # the original, untouched
    assert headers["Berth-Consumer"] == durable_name("scheduler", PingService.TYPE)
    assert "cannot handle this one" in headers["Berth-Dead-Letter-Reason"]
    event, _ = events.items[0]
    assert event["type"] == BusDeadLettered.TYPE and event["source"] == "berth/scheduler"
    data = BusDeadLettered.model_validate(event["data"])
    assert data.consumer == durable_name("scheduler", PingService.TYPE)
    assert data.deliveries == 3
    assert data.original_subject == PingService.TYPE and data.original_id == env.id
    assert data.reason == "ValueError: cannot handle this one"
    assert await stream_messages(api, DLQ_STREAM) == 1  # kept in the DLQ stream for inspection
    await _assert_gone(api, attempts, 3)
    assert len(dlq.items) == 1 and len(events.items) == 1
    for c in (dlq, events):
        await c.close()
    await worker.close()
    await api.close()


async def test_unparseable_payload_is_dead_lettered_at_once(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=5)
    dlq, events = await _dlq_and_events(nats_server.url)
    attempts: list[int] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        attempts.append(d.attempt)

    await worker.consume(PingService, handler)
    await api.js.publish(PingService.TYPE, b"{not json", headers={"Nats-Msg-Id": "garbage-1"})
    # an envelope whose data does not fit the model is just as unparseable
    bad = api.envelope(ServicePinged(nonce="x", service="y"))
    await api.js.publish(PingService.TYPE, bad.to_bytes())
    await wait_until(lambda: len(events.items) == 2, timeout=10)
    assert attempts == []
    assert [h["Berth-Dead-Letter-Reason"].startswith("unparseable message") for _, h in dlq.items] == [True, True]
    assert dlq.items[0][0] == {"raw": "{not json"}
    first, second = (BusDeadLettered.model_validate(e["data"]) for e, _ in events.items)
    assert (first.deliveries, first.original_id) == (1, None)
    assert (second.deliveries, second.original_id) == (1, bad.id)
    await _assert_gone(api, attempts, 0)
    for c in (dlq, events):
        await c.close()
    await worker.close()
    await api.close()


async def test_permanent_error_is_dead_lettered_at_once(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=5)
    dlq, events = await _dlq_and_events(nats_server.url)
    attempts: list[int] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        attempts.append(d.attempt)
        raise PermanentError("no such deployment")

    await worker.consume(PingService, handler)
    await api.publish(PingService(nonce="perm"))
    await wait_until(lambda: events.items, timeout=10)
    data = BusDeadLettered.model_validate(events.items[0][0]["data"])
    assert (data.deliveries, data.reason) == (1, "no such deployment")
    assert len(dlq.items) == 1
    await _assert_gone(api, attempts, 1)
    for c in (dlq, events):
        await c.close()
    await worker.close()
    await api.close()


async def test_message_that_keeps_crashing_its_consumer_is_dead_lettered_without_running(nats_server):
    """Deliveries cut short (process killed, never acked) count: past max_deliver the handler is not called."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=2, ack_wait_s=0.5)
    events = await Collector().start(nats_server.url, BusDeadLettered.TYPE)
    attempts: list[int] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        attempts.append(d.attempt)

    consumer = await worker.consume(PingService, handler)
    await consumer.stop()  # the durable exists; now play a process that dies holding the message, twice
    await api.publish(PingService(nonce="crashy"))
    name = durable_name("scheduler", PingService.TYPE)
    raw = await api.js.pull_subscribe_bind(durable=name, stream=CMD_STREAM)
    for expected in (1, 2):
        (msg,) = await raw.fetch(1, timeout=5)
        assert msg.metadata.num_delivered == expected
        await asyncio.sleep(0.7)  # past ack_wait, never acked
    await raw.unsubscribe()
    await worker.consume(PingService, handler)
    await wait_until(lambda: events.items, timeout=10)
    data = BusDeadLettered.model_validate(events.items[0][0]["data"])
    assert data.deliveries == 3 and "exceeded max deliveries" in data.reason
    await _assert_gone(api, attempts, 0)
    await events.close()
    await worker.close()
    await api.close()


async def test_a_failing_dead_letter_consumer_does_not_loop(nats_server):
    """A subscriber of evt.bus.dead_lettered that always fails gets its events dead-lettered once, no more."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=1)
    notifier = await connected_bus("notifier", nats_server.url, max_deliver=2, backoff_s=[0.1])
    calls: list[str] = []

    async def poison(msg: PingService, d: Delivery) -> None:
        raise PermanentError("bad")

    async def broken(msg: BusDeadLettered, d: Delivery) -> None:
        calls.append(msg.original_subject)
        raise RuntimeError("notifier bug")

    await worker.consume(PingService, poison)
    await notifier.consume(BusDeadLettered, broken)
    await api.publish(PingService(nonce="p"))
    await wait_until(lambda: len(calls) == 2, timeout=10)
    await asyncio.sleep(1.0)
    assert calls == [PingService.TYPE, PingService.TYPE]
    assert await stream_messages(api, EVT_STREAM) == 1  # one dead_lettered event, not a cascade
    dlq = await api.js.stream_info(DLQ_STREAM, subjects_filter=">")
    assert dlq.state.subjects == {DLQ_SUBJECT: 1, f"dlq.{BusDeadLettered.TYPE}": 1}
    await notifier.close()
    await worker.close()
    await api.close()


async def test_dead_letter_subject_can_be_consumed(nats_server):
    """An operator tool can read dlq.<subject> through the same consumer machinery."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=1)

    async def poison(msg: PingService, d: Delivery) -> None:
        raise PermanentError("bad")

    got: list[tuple[str, str]] = []

    async def inspect(msg: object, d: Delivery) -> None:
        got.append((d.envelope.type, d.headers["Berth-Dead-Letter-Reason"]))

    await worker.consume(PingService, poison)
    await api.consume("dlq.>", inspect)
    await api.publish(PingService(nonce="p"))
    await wait_until(lambda: got, timeout=10)
    assert got == [(PingService.TYPE, "bad")]
    info = await api.js.consumer_info(DLQ_STREAM, durable_name("api", "dlq.>"))
    assert info.config.filter_subject == "dlq.>" and info.num_ack_pending == 0
    await worker.close()
    await api.close()


async def test_transient_failures_are_retried_after_the_backoff_then_acked(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, max_deliver=5, backoff_s=[0.4, 0.8])
    events = await Collector().start(nats_server.url, BusDeadLettered.TYPE)
    times: list[float] = []

    async def flaky(msg: PingService, d: Delivery) -> None:
        times.append(time.monotonic())
        if d.attempt < 3:
            raise TransientError("registry busy")

    await worker.consume(PingService, flaky)
    await api.publish(PingService(nonce="flaky"))
    await wait_until(lambda: len(times) == 3, timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, gaps  # nak delays honoured, in order
    assert gaps[1] < 3.0  # and not stretched to some other timeout
    await _assert_gone(api, times, 3)
    assert events.items == []
    await events.close()
    await worker.close()
    await api.close()


def test_the_reason_a_message_did_not_parse_names_fields_not_values() -> None:
    from pydantic import BaseModel, ConfigDict, ValidationError

    from berth_common.bus.consumer import unparseable

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int

    try:
        Strict.model_validate({"port": "sealed:v2:never-in-a-reason", "password": "sealed:v2:nor-this"})
    except ValidationError as exc:
        why = unparseable(exc)
    assert "sealed:v2" not in why
    assert why.startswith("2 error(s) for Strict: ") and "port: " in why and "password: Extra inputs" in why
    assert unparseable(KeyError("type")) == "KeyError: 'type'"
