"""A consumer's stop: an idle fetch ends at once, and nothing the server handed to it waits out ack_wait."""

from __future__ import annotations

import asyncio
import json
import time

from berth_common.bus import Delivery
from berth_common.bus.fetching import end_if_idle
from berth_common.catalogue import PingService
from tests.support.bus_helpers import connected_bus, wait_until


async def test_a_stop_ends_an_idle_fetch_at_once(nats_server):
    """A fetch waiting with nothing to get is not waited out (3 s here) when the service stops."""
    worker = await connected_bus("scheduler", nats_server.url, fetch_wait_s=3.0)

    async def handler(msg: PingService, d: Delivery) -> None:
        pass

    consumer = await worker.consume(PingService, handler)
    await asyncio.sleep(0.3)  # the consumer waits in its fetch now
    start = time.monotonic()
    await worker.close(timeout=30)
    assert time.monotonic() - start < 1.0
    assert not consumer.running


async def test_a_stop_ends_an_idle_fetch_that_got_a_status_left_by_an_earlier_pull_request(nats_server):
    """A fetch's pull request expires on the server about when the fetch times out, so its status (408) may
    reach the next fetch: that one holds no message for it and is ended at once too (it was waited out: up
    to the fetch wait, 5 s here, at every stop of a service, whose tens of consumers made one likely)."""
    worker = await connected_bus("scheduler", nats_server.url, fetch_wait_s=5.0)

    async def handler(msg: PingService, d: Delivery) -> None:
        pass

    consumer = await worker.consume(PingService, handler)
    await wait_until(lambda: consumer._fetching is not None)
    await asyncio.sleep(0.2)  # the consumer waits in its fetch now
    # A pull request of the subscription's own that expires at once: its 408 reaches the fetch waiting now.
    received = consumer._psub._sub._received
    request = {"batch": 1, "expires": 50_000_000}
    stream, name = consumer.stream, consumer.name
    await worker._nc.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}", json.dumps(request).encode(), reply=consumer._psub._deliver
    )
    await wait_until(lambda: consumer._psub._sub._received > received)
    assert consumer._fetching is not None and not consumer._fetching.done()
    print(
        "DBG",
        type(consumer._psub._sub._pending_queue),
        consumer._psub._sub._pending_queue.messages,
        consumer._fetch_mark,
        consumer._psub._sub._received,
    )
    start = time.monotonic()
    await worker.close(timeout=30)
    assert time.monotonic() - start < 1.0
    assert not consumer.running


async def test_a_message_handed_to_an_abandoned_fetch_goes_at_once_to_the_next_consumer(nats_server):
    """The server may give a message to the pull request of a fetch that stop has just ended: it is given
    back on the way out, so the next consumer gets it at once, not after the ack_wait (60 s here)."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, fetch_wait_s=5.0, ack_wait_s=60.0)
    seen: list[tuple[str, int]] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        seen.append((msg.nonce, d.attempt))

    consumer = await worker.consume(PingService, handler)
    await wait_until(lambda: consumer._fetching is not None)
    await asyncio.sleep(0.2)  # the pull request waits on the server
    # What stop does first, then a message arrives for the pull request the ended fetch left behind.
    consumer._stopping.set()
    end_if_idle(consumer._fetching, consumer._psub, consumer._fetch_mark)
    await wait_until(lambda: consumer._fetching is None)
    await api.publish(PingService(nonce="late"))
    await wait_until(lambda: consumer._psub._sub._pending_queue.qsize() > 0, timeout=5)
    await worker.close(timeout=5)
    assert seen == []
    again = await connected_bus("scheduler", nats_server.url, ack_wait_s=60.0)
    try:
        await again.consume(PingService, handler)
        await wait_until(lambda: seen == [("late", 2)], timeout=5)
    finally:
        await again.close(timeout=5)
        await api.close(timeout=5)


async def test_messages_published_during_stops_are_each_handled_promptly(nats_server):
    """Stops racing a steady stream of messages (consumers with a long fetch wait, so every stop ends a
    waiting fetch) strand nothing: all are handled well before the 60 s ack_wait."""
    api = await connected_bus("api", nats_server.url)
    seen: list[str] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        seen.append(msg.nonce)

    nonces = [f"m{i}" for i in range(40)]

    async def send() -> None:
        for n in nonces:
            await api.publish(PingService(nonce=n))
            await asyncio.sleep(0.01)

    sender = asyncio.create_task(send())
    try:
        while not sender.done():
            worker = await connected_bus("scheduler", nats_server.url, fetch_wait_s=5.0, ack_wait_s=60.0)
            await worker.consume(PingService, handler)
            await asyncio.sleep(0.03)
            await worker.close(timeout=5)
        last = await connected_bus("scheduler", nats_server.url, fetch_wait_s=5.0, ack_wait_s=60.0)
        await last.consume(PingService, handler)
        await wait_until(lambda: set(seen) == set(nonces), timeout=10)
        await last.close(timeout=5)
    finally:
        await sender
        await api.close(timeout=5)
