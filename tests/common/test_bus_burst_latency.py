"""A burst of commands reaches a concurrent consumer's handlers at once: no message waits out a fetch."""

from __future__ import annotations

import asyncio
import json
import time

from berth_common.bus import Bus, Delivery
from berth_common.bus.consumer import Consumer
from berth_common.catalogue import PingService
from tests.support.bus_helpers import connected_bus, wait_until

FETCH_WAIT_S = 2.0


async def _expire_a_pull_request(bus: Bus, consumer: Consumer) -> None:
    """A pull request of the subscription's own that expires at once: its status (408) reaches the fetch
    waiting now, as an expired earlier request's does when it comes just after that fetch timed out."""
    received = consumer._psub._sub._received
    request = {"batch": 1, "expires": 50_000_000}
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{consumer.stream}.{consumer.name}"
    await bus._nc.publish(subject, json.dumps(request).encode(), reply=consumer._psub._deliver)
    await wait_until(lambda: consumer._psub._sub._received > received, interval=0.01)


async def _burst_delays(url: str, *, concurrency: int, bursts: int, size: int) -> list[float]:
    """Publish ``bursts`` bursts of ``size`` commands to a waiting consumer (a long fetch wait), each after a
    status reached its fetch; the time from each command's publish (acknowledged by the stream) to its
    handler (up to the first burst held up)."""
    producer = await connected_bus("operator", url)
    worker = await connected_bus("scheduler", url, fetch_wait_s=FETCH_WAIT_S)
    published: dict[str, float] = {}
    handled: dict[str, float] = {}

    async def handler(msg: PingService, d: Delivery) -> None:
        handled[msg.nonce] = time.monotonic()

    try:
        consumer = await worker.consume(PingService, handler, concurrency=concurrency)
        for b in range(bursts):
            await wait_until(lambda: consumer._fetching is not None)
            await asyncio.sleep(0.05)  # the consumer waits in its fetch now
            await _expire_a_pull_request(worker, consumer)
            names = [f"b{b}-{i}" for i in range(size)]
            for name in names:
                await producer.publish(PingService(nonce=name))
                published[name] = time.monotonic()
            await wait_until(lambda: all(n in handled for n in names), timeout=3 * FETCH_WAIT_S, interval=0.01)
            if max(handled[n] - published[n] for n in names) > FETCH_WAIT_S / 4:
                break  # held up: no need to go on
        return [handled[n] - published[n] for n in published]
    finally:
        await worker.close(timeout=5)
        await producer.close(timeout=2)


async def test_a_burst_is_handled_at_once_though_a_status_reached_the_waiting_fetch(nats_server):
    """nats-py's fetch takes any status on its inbox (an expired earlier request's 408) for the answer to its
    own request and sends a second one, which stays on the server and takes later messages; a fetch that
    asked for more than were coming then kept what it got until its wait ended (2 s here; about one burst
    in ten after an idle fetch wait). Each command is handed over well before the fetch wait."""
    delays = await _burst_delays(nats_server.url, concurrency=8, bursts=10, size=4)
    assert max(delays) < FETCH_WAIT_S / 4, sorted(delays)[-5:]


async def test_a_burst_is_handled_at_once_by_a_sequential_consumer(nats_server):
    """The same with one handler at a time (held up too, before: its fetch of 10 waited for the rest)."""
    delays = await _burst_delays(nats_server.url, concurrency=1, bursts=6, size=4)
    assert max(delays) < FETCH_WAIT_S / 4, sorted(delays)[-5:]
