"""Streams are declared idempotently and a differing stream is refused, never overwritten."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import RetentionPolicy, StreamConfig

from berth_common.bus import Bus, ConsumerConflictError, Delivery, StreamConflictError
from berth_common.bus.streams import CMD_STREAM, DLQ_STREAM, EVT_STREAM, LOG_STREAM, declare_streams, default_streams
from berth_common.catalogue import PingService
from tests.support.bus_helpers import connected_bus


async def _stream_names(url: str) -> dict[str, StreamConfig]:
    nc = await nats.connect(url)
    infos = await nc.jetstream().streams_info()
    await nc.close()
    return {i.config.name: i.config for i in infos}


async def test_declaring_twice_and_concurrently_is_fine(nats_server):
    buses = [Bus(f"svc{i}", nats_server.url) for i in range(6)]
    await asyncio.gather(*(b.connect() for b in buses))  # six services starting at once
    await declare_streams(buses[0].js, default_streams())  # and once more
    configs = await _stream_names(nats_server.url)
    assert sorted(configs) == sorted([CMD_STREAM, EVT_STREAM, LOG_STREAM, DLQ_STREAM])
    assert configs[CMD_STREAM].retention == RetentionPolicy.WORK_QUEUE
    assert configs[CMD_STREAM].subjects == ["cmd.>"]
    assert configs[EVT_STREAM].retention == RetentionPolicy.LIMITS
    assert configs[EVT_STREAM].max_age == 7 * 86400
    assert configs[LOG_STREAM].max_age == 24 * 3600
    assert configs[EVT_STREAM].duplicate_window == 120
    for b in buses:
        await b.close()


async def test_conflicting_stream_is_refused_and_left_untouched(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=EVT_STREAM, subjects=["evt.>"], max_age=3600, duplicate_window=60))
    await js.publish("evt.keep.me", b"{}")
    bus = Bus("api", nats_server.url)
    with pytest.raises(StreamConflictError, match=r"BERTH_EVT exists with another configuration: max_age 3600.0"):
        await bus.connect()
    info = await js.stream_info(EVT_STREAM)
    assert info.config.max_age == 3600 and info.state.messages == 1
    # a retention differing from the declared one also settles nothing
    with pytest.raises(StreamConflictError):
        await declare_streams(js, default_streams(event_retention_days=1 / 24))
    await bus.close()
    await nc.close()


async def test_subjects_held_by_another_stream_are_a_conflict(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="SOMEONE_ELSE", subjects=["cmd.>"]))
    with pytest.raises(StreamConflictError, match="another stream already holds"):
        await declare_streams(js, default_streams())
    assert sorted(await _stream_names(nats_server.url)) == ["SOMEONE_ELSE"]
    await nc.close()


async def test_a_command_has_exactly_one_owning_service(nats_server):
    """The command stream is a work queue: a second service consuming the same command is refused."""
    owner = await connected_bus("scheduler", nats_server.url)
    intruder = await connected_bus("builder", nats_server.url)

    async def handler(msg: PingService, d: Delivery) -> None:
        return None

    await owner.consume(PingService, handler)
    await owner.consume(PingService, handler)  # the same service again (a replica) is fine
    with pytest.raises(ConsumerConflictError, match="exactly one owning service"):
        await intruder.consume(PingService, handler)
    # "only new messages" cannot apply to a work queue: the consumer still gets what is waiting
    late = await connected_bus("metrics", nats_server.url)
    await owner.publish(PingService(nonce="x"), nats_subject="cmd.system.other")
    got: list[str] = []

    async def collect(msg: object, d: Delivery) -> None:
        got.append(d.envelope.id)

    await late.consume("cmd.system.other", collect, new_only=True)
    for _ in range(50):
        if got:
            break
        await asyncio.sleep(0.05)
    assert len(got) == 1
    info = await owner.js.consumer_info(CMD_STREAM, "scheduler--cmd_system_ping")
    assert info.config.max_deliver == -1  # Berth counts deliveries and dead-letters itself
    for b in (owner, intruder, late):
        await b.close()
