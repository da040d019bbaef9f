"""Streams are declared idempotently and a differing stream is refused, never overwritten."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from structlog.testing import capture_logs

from berth_common.bus import Bus, ConsumerConflictError, Delivery, StreamConflictError
from berth_common.bus.streams import (
    CMD_STREAM,
    DLQ_STREAM,
    EVT_STREAM,
    LOG_STREAM,
    PER_SUBJECT_LIMIT,
    block_size,
    declare_streams,
    default_streams,
)
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


def test_the_limits_streams_carry_a_per_subject_limit_and_the_work_queue_none():
    configs = {spec.name: spec.config() for spec in default_streams(event_retention_days=3, log_retention_hours=6)}
    per_subject = {name: c.max_msgs_per_subject for name, c in configs.items()}
    assert per_subject == {
        CMD_STREAM: -1,
        EVT_STREAM: PER_SUBJECT_LIMIT,
        LOG_STREAM: PER_SUBJECT_LIMIT,
        DLQ_STREAM: PER_SUBJECT_LIMIT,
    }
    # a limit no subject reaches: a deployment's log lines, or one event type over its retention
    assert PER_SUBJECT_LIMIT >= 10_000_000
    assert (configs[EVT_STREAM].max_age, configs[LOG_STREAM].max_age) == (3 * 86400, 6 * 3600)
    assert {c.max_bytes for c in configs.values()} == {-1}  # nothing stored is capped in bytes


def _blocks(server_dir: Path, stream: str) -> list[int]:
    return sorted(
        p.stat().st_size for p in (server_dir / "nats" / "jetstream" / "$G" / "streams" / stream / "msgs").glob("*.blk")
    )


async def test_a_limits_stream_is_written_in_blocks_of_at_most_4_mb(nats_server):
    """nats-server keeps in memory the block a stream is writing (while it is written or read at least every
    10 s), up to the block's size: the bound of what a steady flow of log lines holds in its memory."""
    bus = await connected_bus("scheduler", nats_server.url)
    line = b"x" * 1000
    for deployment in range(6):  # 6 MB of log lines, 1 MB per deployment
        subject = f"log.{uuid.uuid4()}"
        acks = [bus.js.publish(subject, line, headers={"Nats-Msg-Id": f"{subject}-{i}"}) for i in range(1000)]
        await asyncio.gather(*acks)
    assert (await bus.js.stream_info(LOG_STREAM)).state.messages == 6000
    for _ in range(100):  # the last block reaches the disk a moment after its acknowledgement
        sizes = _blocks(nats_server.data_dir, LOG_STREAM)
        if sum(sizes) >= 6 * 1000 * 1000:
            break
        await asyncio.sleep(0.05)
    assert len(sizes) >= 2 and max(sizes) <= 4 * 1024 * 1024, sizes
    await bus.close()


async def test_a_stream_declared_before_the_per_subject_limit_is_kept_and_another_limit_refused(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    declared = {spec.name: spec for spec in default_streams()}
    await js.add_stream(replace(declared[EVT_STREAM], max_msgs_per_subject=-1).config())  # an older install
    await js.add_stream(replace(declared[LOG_STREAM], max_msgs_per_subject=5).config())
    with pytest.raises(
        StreamConflictError, match=r"BERTH_LOG exists with another configuration: max_msgs_per_subject 5"
    ):
        await declare_streams(js, default_streams())
    await js.delete_stream(LOG_STREAM)
    await declare_streams(js, default_streams())
    configs = await _stream_names(nats_server.url)
    assert configs[EVT_STREAM].max_msgs_per_subject == -1  # accepted as it is
    assert configs[LOG_STREAM].max_msgs_per_subject == PER_SUBJECT_LIMIT
    await nc.close()


def test_block_size_is_read_from_a_configuration_as_nats_server_sizes_blocks():
    declared = {spec.name: spec.config() for spec in default_streams()}
    mb = 1024 * 1024
    assert {name: block_size(c) for name, c in declared.items()} == {
        CMD_STREAM: 4 * mb,  # a work queue
        EVT_STREAM: 4 * mb,  # the per-subject limit
        LOG_STREAM: 4 * mb,
        DLQ_STREAM: 4 * mb,
    }
    old = replace(declared[EVT_STREAM], max_msgs_per_subject=-1)
    assert block_size(old) == 8 * mb  # a limits stream without limits
    assert block_size(replace(old, max_bytes=64 * 1024)) == 32 * 1024
    assert block_size(replace(old, max_bytes=10 * mb)) == 4 * mb
    assert block_size(replace(old, max_bytes=64 * mb)) == 8 * mb
    assert block_size(replace(old, storage=StorageType.MEMORY)) is None


async def _fill(js, subject_prefix: str, megabytes: int) -> None:
    line = b"x" * 1000
    for _ in range(megabytes):
        subject = f"{subject_prefix}.{uuid.uuid4().hex}"
        await asyncio.gather(
            *(js.publish(subject, line, headers={"Nats-Msg-Id": f"{subject}-{i}"}) for i in range(1000))
        )


async def test_a_stream_made_with_other_blocks_is_reported_and_left_as_it_is(nats_server):
    """An install older than the per-subject limit has events in 8 MB blocks (what ``block_size`` reads from its
    configuration is what nats-server writes); declaring keeps it, its messages and its consumers, and says so."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    declared = {spec.name: spec for spec in default_streams()}
    old = replace(declared[EVT_STREAM], max_msgs_per_subject=-1).config()
    await js.add_stream(old)
    await js.add_consumer(EVT_STREAM, ConsumerConfig(durable_name="notifier--evt_x", filter_subject="evt.x.>"))
    await _fill(js, "evt.x", 5)  # 5 MB: more than a 4 MB block holds
    for _ in range(100):  # the last block reaches the disk a moment after its acknowledgement
        sizes = _blocks(nats_server.data_dir, EVT_STREAM)
        if sum(sizes) >= 5 * 1000 * 1000:
            break
        await asyncio.sleep(0.05)
    assert max(sizes) > 4 * 1024 * 1024 and max(sizes) <= block_size(old) == 8 * 1024 * 1024, sizes

    with capture_logs() as logs:
        await declare_streams(js, default_streams())
        await declare_streams(js, default_streams())  # a second service starting
    kept = [e for e in logs if e["event"].startswith("stream keeps the blocks it was made with")]
    assert [(e["stream"], e["block_mb"], e["declared_block_mb"], e["log_level"]) for e in kept] == [
        (EVT_STREAM, 8.0, 4.0, "warning")
    ] * 2  # the streams made now (with the declared blocks) are not named
    assert kept[0]["messages"] == 5000 and kept[0]["made_again"] is False
    assert f"delete stream {EVT_STREAM}" in kept[0]["to_make_again"]
    info = await js.stream_info(EVT_STREAM)
    assert info.state.messages == 5000 and info.config.max_msgs_per_subject == -1  # untouched
    assert (await js.consumer_info(EVT_STREAM, "notifier--evt_x")).num_pending == 5000
    await nc.close()


async def test_the_soak_warm_up_ends_once_each_busy_stream_has_filled_a_block(nats_server):
    """The soak's warm-up rule, read from the JetStream API of a real server: events and log lines each must
    hold a block's worth of bytes (4 MB as declared); one full stream is not enough."""
    from benchmarks.support.stream_blocks import WARMUP_STREAMS, stream_fill, warmed_up

    bus = await connected_bus("scheduler", nats_server.url)
    assert WARMUP_STREAMS == (EVT_STREAM, LOG_STREAM)
    fill = await stream_fill(bus.js)
    assert not warmed_up(fill) and {f.block_bytes for f in fill.values()} == {4 * 1024 * 1024}
    await _fill(bus.js, "log", 5)
    fill = await stream_fill(bus.js)
    assert fill[LOG_STREAM].blocks_filled == 1 and fill[LOG_STREAM].messages == 5000
    assert fill[EVT_STREAM].blocks_filled == 0 and not warmed_up(fill)
    await _fill(bus.js, "evt.x", 4)  # 4 x 1000 records of about 1,100 bytes: more than 4 MiB
    fill = await stream_fill(bus.js)
    assert fill[EVT_STREAM].blocks_filled == 1 and warmed_up(fill)
    for _ in range(100):  # a block filled: the store has begun a second one
        if len(_blocks(nats_server.data_dir, EVT_STREAM)) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(_blocks(nats_server.data_dir, EVT_STREAM)) >= 2
    await bus.close()
