"""Concurrency knobs of the bus: parallel handlers for independent slow work, and queries answered in parallel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from berth_common.bus import Delivery
from berth_common.catalogue import HealthQuery, HealthReply, ServicePinged
from tests.support.bus_helpers import connected_bus, wait_until


async def _run_slow_handlers(url: str, concurrency: int, n: int = 8, delay: float = 0.3) -> tuple[float, int]:
    producer = await connected_bus("scheduler", url)
    consumer = await connected_bus("api", url)
    done: list[str] = []
    in_flight = 0
    peak = 0

    async def slow(msg: ServicePinged, d: Delivery) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(delay)
        in_flight -= 1
        done.append(msg.nonce)

    try:
        for i in range(n):
            await producer.publish(ServicePinged(nonce=f"c{i}", service="scheduler"))
        start = time.monotonic()
        await consumer.consume(ServicePinged, slow, concurrency=concurrency)
        await wait_until(lambda: len(done) == n, timeout=30)
        return time.monotonic() - start, peak
    finally:
        await consumer.close(timeout=5)
        await producer.close(timeout=2)


async def test_sequential_consumer_handles_one_at_a_time_in_order(nats_server):
    elapsed, peak = await _run_slow_handlers(nats_server.url, concurrency=1, n=4, delay=0.2)
    assert peak == 1
    assert elapsed >= 4 * 0.2


async def test_concurrent_consumer_overlaps_slow_handlers(nats_server):
    elapsed, peak = await _run_slow_handlers(nats_server.url, concurrency=4, n=8, delay=0.3)
    assert 2 <= peak <= 4
    assert elapsed < 8 * 0.3  # sequential handling would take at least 2.4 s


async def test_slow_query_does_not_hold_up_others(nats_server):
    server = await connected_bus("notifier", nats_server.url)
    client = await connected_bus("api", nats_server.url)
    release = asyncio.Event()

    async def health(data: dict[str, Any]) -> HealthReply:
        if data.get("slow"):
            await release.wait()
        return HealthReply(service="notifier", ready=True, components={})

    class SlowHealth(HealthQuery):
        slow: bool = True

    await server.serve("health", health)
    try:
        slow = asyncio.create_task(client.request("notifier", "health", SlowHealth(), HealthReply, timeout=10))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        fast = await client.request("notifier", "health", HealthQuery(), HealthReply, timeout=5)
        assert fast.ready and time.monotonic() - start < 1.0
        assert not slow.done()
        release.set()
        assert (await slow).ready
    finally:
        await server.close(timeout=2)
        await client.close(timeout=2)


async def test_a_waiting_handler_does_not_hold_up_a_message_fetched_after_it(nats_server):
    """With concurrency > 1 the consumer keeps fetching while handlers run: a message published while the
    first one's handler waits (fetched alone, as on a quiet bus) is handled meanwhile. Before, the next
    fetch came only once the whole fetched batch was handled."""
    producer = await connected_bus("scheduler", nats_server.url)
    consumer = await connected_bus("api", nats_server.url)
    release = asyncio.Event()
    done: list[str] = []

    async def handler(msg: ServicePinged, d: Delivery) -> None:
        if msg.nonce == "blocked":
            await release.wait()
        done.append(msg.nonce)

    try:
        await consumer.consume(ServicePinged, handler, concurrency=4)
        await producer.publish(ServicePinged(nonce="blocked", service="scheduler"))
        await asyncio.sleep(0.5)  # fetched and waiting, alone in its batch
        await producer.publish(ServicePinged(nonce="later", service="scheduler"))
        await wait_until(lambda: done == ["later"], timeout=5)
        release.set()
        await wait_until(lambda: done == ["later", "blocked"], timeout=5)
    finally:
        release.set()
        await consumer.close(timeout=5)
        await producer.close(timeout=2)


async def test_a_consumer_stopping_lets_its_handlers_in_flight_finish(nats_server):
    producer = await connected_bus("scheduler", nats_server.url)
    consumer = await connected_bus("api", nats_server.url)
    done: list[str] = []

    async def handler(msg: ServicePinged, d: Delivery) -> None:
        await asyncio.sleep(0.5)
        done.append(msg.nonce)

    try:
        await consumer.consume(ServicePinged, handler, concurrency=4)
        for i in range(3):
            await producer.publish(ServicePinged(nonce=f"s{i}", service="scheduler"))
            await asyncio.sleep(0.1)  # three fetches, three batches in flight
    finally:
        await asyncio.sleep(0.1)
        await consumer.close(timeout=5)
        await producer.close(timeout=2)
    assert sorted(done) == ["s0", "s1", "s2"]
