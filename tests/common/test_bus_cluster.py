"""The bus on a three-node NATS cluster (real nats-server processes on loopback): streams with three replicas,
and a node SIGKILLed in the middle of a burst of commands loses none and has none handled twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert

from berth_cli import components, nats_auth
from berth_cli.bus_cmd import server_reports, wait_ready
from berth_common.bus import Bus, Delivery, StreamReplicasError, default_streams, nats_servers
from berth_common.bus.streams import CMD_STREAM, EVT_STREAM
from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Unit, idempotent, make_engine, make_sessionmaker
from berth_common.db.tables import outbox
from berth_common.db.unit import OutboxRelay
from berth_common.runtime import _connect_bus
from berth_common.settings import BaseServiceSettings
from tests.support.bus_helpers import connect_as_services_do, prepare_schema, stream_messages, wait_until
from tests.support.bus_worker import effects
from tests.support.nats_cluster import NatsCluster, Node, distinct_ports, node_config
from tests.support.procs import Proc

SCHEMA = "worker"
BURST = 300
KILL_AT = 100  # commands published before the node is killed


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster").start()
    yield nodes
    nodes.stop()


def test_nats_url_lists_a_clusters_nodes():
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers("nats://a:4222, nats://b:4222,nats://c:4222,") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    with pytest.raises(ValueError, match="names no server"):
        nats_servers(" , ")


async def test_single_server_refuses_three_replicas_clearly(nats_server):
    bus = Bus("api", nats_server.url, streams=default_streams(replicas=3))
    with pytest.raises(StreamReplicasError, match=r"BERTH_CMD with 3 replicas \(BERTH_NATS_REPLICAS\)"):
        await bus.connect()
    assert bus._nc is None  # the connection was closed, nothing half-declared kept
    # an existing single-replica stream is kept (and reported) when the server cannot hold more
    one = Bus("api", nats_server.url, streams=default_streams(replicas=1))
    await one.connect()
    three = Bus("scheduler", nats_server.url, streams=default_streams(replicas=3))
    await three.connect()
    assert (await three.js.stream_info(CMD_STREAM)).config.num_replicas == 1
    await three.close()
    await one.close()


async def test_streams_get_three_replicas_and_existing_ones_are_raised(cluster):
    one = Bus("api", cluster.url, streams=default_streams(replicas=1))
    await connect_as_services_do(one)
    assert (await one.js.stream_info(CMD_STREAM)).config.num_replicas == 1
    three = Bus("scheduler", cluster.url, streams=default_streams(replicas=3))
    await connect_as_services_do(three)  # finds the streams with one copy: raises them to three
    for stream in (CMD_STREAM, EVT_STREAM, "BERTH_LOG", "BERTH_DLQ"):
        assert (await three.js.stream_info(stream)).config.num_replicas == 3, stream
        await wait_until(lambda s=stream: _three_copies(three, s), timeout=40, interval=0.1)
    again = Bus("builder", cluster.url, streams=default_streams(replicas=1))
    await connect_as_services_do(again)  # a service started with the old setting does not lower them
    assert (await again.js.stream_info(CMD_STREAM)).config.num_replicas == 3
    for bus in (again, three, one):
        await bus.close()


async def test_a_service_takes_the_cluster_and_replicas_from_its_settings(cluster, monkeypatch):
    monkeypatch.setenv("BERTH_NATS_URL", cluster.url)
    monkeypatch.setenv("BERTH_NATS_REPLICAS", "3")
    settings = BaseServiceSettings(service_name="api")
    bus = await _connect_bus(settings, asyncio.Event())  # what every service's start does
    try:
        assert bus.nc.connected_url is not None and bus.nc.connected_url.port in {n.port for n in cluster.nodes}
        assert (await bus.js.stream_info(CMD_STREAM)).config.num_replicas == 3
    finally:
        await bus.close()
    monkeypatch.setenv("BERTH_NATS_REPLICAS", "0")
    with pytest.raises(ValidationError, match="nats_replicas"):
        BaseServiceSettings(service_name="api")


async def test_the_generated_cluster_configuration_forms_an_authenticated_cluster(tmp_path: Path):
    """`berth bus config --cluster-routes` (docker-compose.cluster.yml): the nodes join each other as
    ``route`` with its derived password, the services' users and permissions hold on every node, and the
    streams get their three copies."""
    secret = "s" * 64
    passwords = nats_auth.derived_passwords(secret)
    route_pw = nats_auth.derived_password(secret, nats_auth.ROUTE)
    system_pw = nats_auth.derived_password(secret, nats_auth.SYSTEM)

    def configure(i: int, route_ports: list[int]) -> dict:
        block = nats_auth.cluster_block(
            [f"127.0.0.1:{p}" for p in route_ports], route_pw, f"127.0.0.1:{route_ports[i]}"
        )
        return json.loads(nats_auth.config_text(passwords, block, system_pw))  # as `berth bus config` writes it

    nodes = NatsCluster(tmp_path / "cluster", configure=configure).start()  # ready: JetStream's meta group has quorum
    try:
        with pytest.raises(Exception, match="Authorization"):
            await nats.connect(nodes.nodes[0].url, allow_reconnect=False, max_reconnect_attempts=0)
        # nats-ready's probe (`berth bus ready`) passes on every node, and the system account's user hears
        # each node's report (`berth bus report`): docker-compose.cluster.yml has no monitoring port
        addresses = [("127.0.0.1", n.port) for n in nodes.nodes]
        assert await wait_ready(addresses, nats_auth.OPERATOR, passwords["operator"], 20) == []
        system_url = nats_auth.with_credentials(nodes.url, nats_auth.SYSTEM, system_pw)
        reports = await server_reports(system_url, "VARZ", 1.0)
        assert [(r["server"]["name"], r["data"]["cluster"]["name"]) for r in reports] == [
            ("n1", "berth"),
            ("n2", "berth"),
            ("n3", "berth"),
        ]
        bus = Bus(
            "scheduler",
            nodes.url,
            streams=default_streams(replicas=3),
            user="scheduler",
            password=passwords["scheduler"],
        )
        await connect_as_services_do(bus)
        for stream in (CMD_STREAM, EVT_STREAM):
            await wait_until(lambda s=stream: _three_copies(bus, s), timeout=40, interval=0.1)
        await bus.close()
        # a process that can reach the route port but has no route password cannot join as a node
        port, route_port = distinct_ports(2)
        rogue_dir = tmp_path / "rogue"
        config = node_config("rogue", port, route_port, [nodes.nodes[0].cluster_port], rogue_dir / "js", "berth")
        (rogue_dir / "js").mkdir(parents=True)
        (rogue_dir / "nats.conf").write_text(json.dumps(config))
        argv = [components.bin_path("nats-server"), "-c", str(rogue_dir / "nats.conf")]
        rogue = Proc(components.Launch("rogue", argv), rogue_dir / "nats.log").start()
        try:
            log = rogue_dir / "nats.log"
            await wait_until(lambda: "Route Error 'Authorization Violation'" in log.read_text(), timeout=15)
        finally:
            rogue.kill()
    finally:
        nodes.stop()


async def _three_copies(bus: Bus, stream: str) -> bool:
    """The stream has a leader and two current followers (its copies placed on every node)."""
    info = await bus.js.stream_info(stream)
    peers = info.cluster.replicas if info.cluster else None
    return bool(info.cluster and info.cluster.leader and peers and len(peers) == 2 and all(p.current for p in peers))


async def _leader(bus: Bus, stream: str) -> str:
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader
    return info.cluster.leader


async def _lead_from(bus: Bus, stream: str, node: str, tries: int = 12) -> None:
    """Step the stream's leader down until ``node`` leads it (the harshest node to lose)."""
    for _ in range(tries):
        leader = await _leader(bus, stream)
        if leader == node:
            return
        await bus.nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5)
        await wait_until(lambda: _leader_is_not(bus, stream, leader), timeout=15, interval=0.1)
    raise AssertionError(f"{node} never became the leader of {stream}")


async def _leader_is_not(bus: Bus, stream: str, old: str) -> bool:
    try:
        return (await _leader(bus, stream)) != old
    except Exception:
        return False


async def _publish_until_acked(bus: Bus, nonce: str) -> int:
    """Publish one command as a service's outbox relay does: the same id again until the bus acknowledges it
    (a node lost mid-publish; the server drops a second copy). The number of failed tries."""
    for failures in range(120):
        try:
            await bus.publish(PingService(nonce=nonce), id=f"ping-{nonce}")
            return failures
        except Exception:
            await asyncio.sleep(0.25)
    raise AssertionError(f"command {nonce} never acknowledged")


def _node_of(bus: Bus, cluster: NatsCluster) -> Node:
    url = bus.nc.connected_url
    assert url is not None
    return next(n for n in cluster.nodes if n.port == url.port)


async def _counts(db_url: str) -> tuple[dict[str, int], int]:
    engine = make_engine(db_url, SCHEMA)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(effects.c.nonce, effects.c.count))).all()
        unsent = (
            await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
        ).scalar_one()
    await engine.dispose()
    return {r[0]: int(r[1]) for r in rows}, int(unsent)


async def _caught_up(node: Node, leader: Node) -> bool:
    def last_seqs(n: Node) -> dict[str, Any]:
        report = n.jsz()
        streams = [s for acc in report.get("account_details") or [] for s in acc.get("stream_detail") or []]
        return {s["name"]: s["state"]["last_seq"] for s in streams}

    try:
        mine, theirs = await asyncio.to_thread(last_seqs, node), await asyncio.to_thread(last_seqs, leader)
    except OSError:
        return False
    return bool(theirs) and mine == theirs


@pytest.mark.slow
async def test_node_killed_mid_burst_loses_nothing_and_does_nothing_twice(cluster, database, unique):
    await prepare_schema(database, SCHEMA, effects)
    engine = make_engine(database, SCHEMA)
    runs: Counter[str] = Counter()
    deliveries: Counter[str] = Counter()

    async def on_ping(msg: PingService, unit: Unit) -> None:
        runs[msg.nonce] += 1
        stmt = insert(effects).values(nonce=msg.nonce)
        await unit.session.execute(
            stmt.on_conflict_do_update(index_elements=[effects.c.nonce], set_={"count": effects.c.count + 1})
        )
        await unit.emit(ServicePinged(nonce=msg.nonce, service="worker"))

    streams = default_streams(replicas=3)
    worker = Bus("worker", cluster.url, streams=streams, ack_wait_s=2.0, backoff_s=[0.2], fetch_wait_s=0.5)
    api = Bus("api", cluster.url, streams=streams)
    await connect_as_services_do(worker)
    await connect_as_services_do(api)
    sessionmaker = make_sessionmaker(engine)
    handler = idempotent(worker, sessionmaker, on_ping)
    relay = OutboxRelay(worker, sessionmaker, interval_s=0.5)  # as every service runs it

    async def handle(msg: PingService, delivery: Delivery) -> None:
        deliveries[msg.nonce] += 1
        await handler(msg, delivery)

    try:
        await worker.consume(PingService, handle, concurrency=4)
        relay.start()
        victim = _node_of(worker, cluster)  # the node the consumer talks through ...
        await _lead_from(api, CMD_STREAM, victim.name)  # ... and the leader of the command stream
        nonces = [f"{unique}-{i}" for i in range(BURST)]
        failures = 0
        started = time.monotonic()
        for i, nonce in enumerate(nonces):
            if i == KILL_AT:
                victim.kill()
                killed_at = time.monotonic()
            failures += await _publish_until_acked(api, nonce)
        published_s = time.monotonic() - started

        async def all_handled() -> bool:
            counts, _ = await _counts(database)
            return len(counts) == BURST

        await wait_until(all_handled, timeout=90, interval=0.2)
        handled_s = time.monotonic() - killed_at
        survivor = _node_of(worker, cluster)
        assert survivor is not victim  # the consumer failed over to another node
        new_leader = await _leader(api, CMD_STREAM)
        assert new_leader != victim.name

        # nothing lost, nothing done twice: every command has exactly one effect in Postgres
        counts, _ = await _counts(database)
        assert sorted(counts) == sorted(nonces)
        assert [n for n, c in counts.items() if c != 1] == []
        await wait_until(lambda: _settled(api), timeout=30, interval=0.2)
        # every effect's event reaches the bus once (published after the commit, or by the outbox relay when
        # the node went away under the publish; a second copy is dropped by its id)
        await wait_until(lambda: _events_out(api, database), timeout=60, interval=0.2)
        assert await stream_messages(api, EVT_STREAM) == BURST
        print(
            f"\nburst of {BURST}: node {victim.name} killed after {KILL_AT}; published in {published_s:.1f}s "
            f"({failures} failed tries); all handled {handled_s:.1f}s after the kill; "
            f"{sum(deliveries.values())} deliveries, {sum(runs.values())} handler runs (a redelivery of a "
            f"committed command finds its id and does nothing)"
        )

        # the node comes back and catches up with what it missed
        victim.launch()
        victim.wait_listening()
        leader = cluster.node(await _leader(api, EVT_STREAM))

        async def back_in_the_cluster() -> bool:
            if not await _caught_up(victim, leader):
                return False
            info = await api.js.stream_info(EVT_STREAM)
            peers = info.cluster.replicas if info.cluster else None
            return bool(peers) and all(p.current and not p.offline for p in peers or [])

        await wait_until(back_in_the_cluster, timeout=60, interval=0.2)
    finally:
        await relay.stop()
        await worker.close(timeout=5)
        await api.close(timeout=5)
        await engine.dispose()


async def _events_out(bus: Bus, db_url: str) -> bool:
    _, unsent = await _counts(db_url)
    return unsent == 0 and await stream_messages(bus, EVT_STREAM) == BURST


async def _settled(bus: Bus) -> bool:
    return await stream_messages(bus, CMD_STREAM) == 0
