"""Delivery guarantees of durable consumers: fan-out, isolation, graceful shutdown, keepalive, reconnects."""

from __future__ import annotations

import asyncio
import shutil
import time

from berth_common.bus import Delivery
from berth_common.bus.streams import CMD_STREAM, EVT_STREAM
from berth_common.catalogue import PingService, ServicePinged
from tests.support.bus_helpers import connected_bus, consumer_info, stream_messages, wait_until


async def test_event_fans_out_and_a_failing_subscriber_does_not_block_others(nats_server):
    producer = await connected_bus("scheduler", nats_server.url)
    got: dict[str, list[str]] = {"api": [], "notifier": []}
    failing_attempts: list[int] = []
    buses = []
    for name in got:
        bus = await connected_bus(name, nats_server.url)

        async def handler(msg: ServicePinged, d: Delivery, name: str = name) -> None:
            got[name].append(msg.nonce)

        await bus.consume(ServicePinged, handler)
        buses.append(bus)
    failing = await connected_bus("metrics", nats_server.url, max_deliver=50, backoff_s=[0.2])

    async def broken(msg: ServicePinged, d: Delivery) -> None:
        failing_attempts.append(d.attempt)
        raise RuntimeError("subscriber bug")

    await failing.consume(ServicePinged, broken)
    try:
        start = time.monotonic()
        nonces = [f"n{i}" for i in range(20)]
        for n in nonces:
            await producer.publish(ServicePinged(nonce=n, service="scheduler"))
        await wait_until(lambda: got["api"] == nonces and got["notifier"] == nonces, timeout=5)
        assert time.monotonic() - start < 3.0  # promptly, not after the failing one's retries
        # the failing subscriber keeps retrying every message meanwhile (nak with backoff)
        await wait_until(lambda: max(failing_attempts, default=0) >= 3, timeout=5)
        assert set(failing_attempts) >= {1, 2, 3}
        info = await consumer_info(failing, EVT_STREAM, "metrics", ServicePinged.TYPE)
        assert info.num_ack_pending == 20
        for name in got:
            info = await consumer_info(producer, EVT_STREAM, name, ServicePinged.TYPE)
            assert info.num_ack_pending == 0 and info.num_pending == 0
        assert await stream_messages(producer, EVT_STREAM) == 20  # events are kept (limits retention)
    finally:
        for bus in [*buses, failing, producer]:
            await bus.close(timeout=2)


async def test_close_lets_a_slow_handler_finish_and_ack(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, ack_wait_s=1.0)
    started, finished = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def slow(msg: PingService, d: Delivery) -> None:
        seen.append(d.attempt)
        started.set()
        await asyncio.sleep(1.5)
        finished.set()

    await worker.consume(PingService, slow)
    await api.publish(PingService(nonce="slow"))
    await asyncio.wait_for(started.wait(), 5)
    await worker.close(timeout=10)
    assert finished.is_set()
    assert await stream_messages(api, CMD_STREAM) == 0  # acked: removed from the work queue

    again = await connected_bus("scheduler", nats_server.url, ack_wait_s=1.0)
    await again.consume(PingService, slow)
    await asyncio.sleep(2.5)
    assert seen == [1]
    await again.close()
    await api.close()


async def test_close_cut_short_by_its_timeout_naks_for_redelivery(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, ack_wait_s=30.0)
    seen: list[int] = []

    async def stuck(msg: PingService, d: Delivery) -> None:
        seen.append(d.attempt)
        if d.attempt == 1:
            await asyncio.sleep(60)

    await worker.consume(PingService, stuck)
    await api.publish(PingService(nonce="stuck"))
    await wait_until(lambda: seen == [1])
    await worker.close(timeout=0.5)
    again = await connected_bus("scheduler", nats_server.url, ack_wait_s=30.0)
    await again.consume(PingService, stuck)
    # nak'ed on cancellation: back at once, not after the 30 s ack_wait
    await wait_until(lambda: seen == [1, 2], timeout=5)
    await again.close()
    assert await stream_messages(api, CMD_STREAM) == 0
    await api.close()


async def test_long_handler_is_kept_alive_beyond_ack_wait(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, ack_wait_s=1.0)
    seen: list[tuple[str, int]] = []

    async def long(msg: PingService, d: Delivery) -> None:
        seen.append((msg.nonce, d.attempt))
        await asyncio.sleep(3.5)

    await worker.consume(PingService, long)
    await api.publish(PingService(nonce="long"))
    await wait_until(lambda: len(seen) == 1)
    await asyncio.sleep(3.0)
    info = await consumer_info(api, CMD_STREAM, "scheduler", PingService.TYPE)
    assert info.num_redelivered == 0
    await worker.close()
    assert seen == [("long", 1)]
    assert await stream_messages(api, CMD_STREAM) == 0
    await api.close()


async def test_messages_waiting_behind_a_slow_handler_are_not_redelivered(nats_server):
    """A fetched batch is handled one by one: the messages still waiting must be kept alive too, or a
    second instance of the service gets them again after ack_wait while the first still holds them."""
    api = await connected_bus("api", nats_server.url)
    first = await connected_bus("scheduler", nats_server.url, ack_wait_s=1.0)
    second = await connected_bus("scheduler", nats_server.url, ack_wait_s=1.0)
    seen: list[tuple[str, int]] = []

    async def slow(msg: PingService, d: Delivery) -> None:
        seen.append((msg.nonce, d.attempt))
        await asyncio.sleep(1.2)

    for i in range(3):
        await api.publish(PingService(nonce=f"m{i}"))
    await first.consume(PingService, slow)  # fetches the three in one batch
    await wait_until(lambda: len(seen) == 1)
    await second.consume(PingService, slow)  # idle: would receive whatever is redelivered
    await wait_until(lambda: len(seen) >= 3, timeout=15)
    await asyncio.sleep(1.5)
    await first.close()
    await second.close()
    assert seen == [("m0", 1), ("m1", 1), ("m2", 1)]
    info = await consumer_info(api, CMD_STREAM, "scheduler", PingService.TYPE)
    assert info.num_redelivered == 0
    await api.close()


async def test_changed_consumer_settings_are_applied_to_the_existing_durable(nats_server):
    first = await connected_bus("scheduler", nats_server.url, ack_wait_s=30.0)

    async def noop(msg: PingService, d: Delivery) -> None:
        return None

    await first.consume(PingService, noop)
    await first.close()
    second = await connected_bus("scheduler", nats_server.url, ack_wait_s=4.0)
    await second.consume(PingService, noop)
    info = await consumer_info(second, CMD_STREAM, "scheduler", PingService.TYPE)
    assert info.config.ack_wait == 4.0
    await second.close()


async def _restart(server, buses, wipe: bool = False) -> None:
    """Restart nats-server and wait until every bus has noticed and reconnected."""
    before = [b.nc.stats["reconnects"] for b in buses]
    server.stop()
    if wipe:
        shutil.rmtree(server.data_dir / "nats")
    server.start()
    await wait_until(
        lambda: all(b.connected and b.nc.stats["reconnects"] > n for b, n in zip(buses, before)), timeout=15
    )


async def test_consumer_survives_a_nats_server_restart(nats_server):
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url)
    seen: list[str] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        seen.append(msg.nonce)

    await worker.consume(PingService, handler)
    await api.publish(PingService(nonce="before"))
    await wait_until(lambda: seen == ["before"])
    await _restart(nats_server, [api, worker])
    await api.publish(PingService(nonce="after"))
    await wait_until(lambda: seen == ["before", "after"], timeout=15)
    await worker.close()
    assert await stream_messages(api, CMD_STREAM) == 0
    await api.close()


async def test_consumer_deleted_on_the_server_is_recreated(nats_server):
    """An operator (or a lost server state) removes the durable: the service puts it back and goes on."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url)
    seen: list[str] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        seen.append(msg.nonce)

    await worker.consume(PingService, handler)
    await api.publish(PingService(nonce="one"))
    await wait_until(lambda: seen == ["one"])
    await api.js.delete_consumer(CMD_STREAM, "scheduler--cmd_system_ping")
    await api.publish(PingService(nonce="two"))
    await wait_until(lambda: seen == ["one", "two"], timeout=10)
    await worker.close()
    await api.close()


async def test_server_that_lost_its_store_gets_streams_and_consumers_back(nats_server, tmp_path):
    """nats-server restarted on an empty store: publishers declare the streams again, consumers recreate."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url)
    seen: list[str] = []

    async def handler(msg: PingService, d: Delivery) -> None:
        seen.append(msg.nonce)

    await worker.consume(PingService, handler)
    await api.publish(PingService(nonce="before"))
    await wait_until(lambda: seen == ["before"])
    await _restart(nats_server, [api, worker], wipe=True)
    await api.publish(PingService(nonce="after"))
    await wait_until(lambda: seen == ["before", "after"], timeout=15)
    await worker.close()
    await api.close()


async def test_close_hands_back_the_rest_of_a_batch_at_once(nats_server):
    """Messages fetched but not started when the service stops are nak'ed, not held until ack_wait."""
    api = await connected_bus("api", nats_server.url)
    worker = await connected_bus("scheduler", nats_server.url, ack_wait_s=30.0)
    seen: list[tuple[str, int]] = []

    async def slow(msg: PingService, d: Delivery) -> None:
        seen.append((msg.nonce, d.attempt))
        await asyncio.sleep(0.5)

    for i in range(3):
        await api.publish(PingService(nonce=f"m{i}"))
    await worker.consume(PingService, slow)
    await wait_until(lambda: len(seen) == 1)
    await worker.close()
    assert seen == [("m0", 1)]
    again = await connected_bus("scheduler", nats_server.url, ack_wait_s=30.0)
    await again.consume(PingService, slow)
    await wait_until(lambda: len(seen) == 3, timeout=5)  # well before the 30 s ack_wait
    assert seen[1:] == [("m1", 2), ("m2", 2)]
    await again.close()
    assert await stream_messages(api, CMD_STREAM) == 0
    await api.close()


async def test_a_stop_waits_out_at_most_the_fetch_wait(nats_server):
    worker = await connected_bus("scheduler", nats_server.url, fetch_wait_s=0.2)

    async def handler(msg: ServicePinged, d: Delivery) -> None:
        pass

    consumer = await worker.consume(ServicePinged, handler)
    assert consumer.fetch_wait_s == 0.2
    await asyncio.sleep(0.1)  # the consumer waits in its fetch now
    await asyncio.wait_for(worker.close(timeout=30), 5)


async def test_messages_sent_while_consumers_come_and_go_are_each_handled_promptly(nats_server):
    """A stop never strands a message a fetch was given: the next consumer gets it at once, not after
    ack_wait (60 s here)."""
    producer = await connected_bus("api", nats_server.url)
    seen: list[str] = []

    async def handler(msg: ServicePinged, d: Delivery) -> None:
        seen.append(msg.nonce)

    nonces = [f"m{i}" for i in range(30)]
    sender = asyncio.create_task(_send_spread(producer, nonces))
    try:
        while not sender.done():
            worker = await connected_bus("notifier", nats_server.url, ack_wait_s=60.0)
            await worker.consume(ServicePinged, handler)
            await asyncio.sleep(0.05)
            await worker.close(timeout=5)
        worker = await connected_bus("notifier", nats_server.url, ack_wait_s=60.0)
        await worker.consume(ServicePinged, handler)
        await wait_until(lambda: set(seen) == set(nonces), timeout=15)
        await worker.close(timeout=5)
    finally:
        await producer.close(timeout=2)


async def _send_spread(producer, nonces: list[str]) -> None:
    for n in nonces:
        await producer.publish(ServicePinged(nonce=n, service="api"))
        await asyncio.sleep(0.02)
