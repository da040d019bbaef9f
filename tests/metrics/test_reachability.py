"""Server reachability: the pure state machine, and the real engine going away behind a unix-socket relay
the test stops and starts again (one ``evt.server.unreachable``, one ``evt.server.back``, across a restart
of the metrics service in between)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from berth_common.bus import subscriptions_confirmed
from berth_metrics.domain.reachability import Limits, ServerHealth, observe
from tests.metrics.relay import Relay
from tests.metrics.service import containers, eventually, metrics_service, run_busybox

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(outcomes: str, limits: Limits, teams: tuple[str, ...] = ("t1",)) -> tuple[ServerHealth, list[tuple[str, int]]]:
    """Feed collections (``o`` answered, ``x`` not) one per 10 s; returns the state and (kind, index) seen."""
    health, seen = ServerHealth(), []
    for i, c in enumerate(outcomes):
        health, tr = observe("vm1", health, c == "o", T0 + timedelta(seconds=10 * i), limits, teams, "refused")
        if tr is not None:
            seen.append((tr.kind, i))
    return health, seen


def test_an_outage_is_announced_after_the_count_and_its_end_once():
    health, seen = run("ooxxxxxxoooo", Limits(down_after=3))
    assert seen == [("unreachable", 4), ("back", 8)] and health.status == "up" and health.failures == 0


def test_failures_below_the_count_and_flapping_under_it_say_nothing():
    assert run("oxxoxxoxxo", Limits(down_after=3))[1] == []
    assert run("xoxoxoxoxo", Limits(down_after=2))[1] == []


def test_back_needs_the_configured_answers_in_a_row():
    _, seen = run("xxxoxooxxooo", Limits(down_after=3, up_after=3))
    assert seen == [("unreachable", 2), ("back", 11)]


def test_the_transitions_carry_one_outage():
    health, first = ServerHealth(), []
    for i, answered in enumerate([True, False, False, True]):
        at = T0 + timedelta(seconds=10 * i)
        health, tr = observe("vm1", health, answered, at, Limits(down_after=2), ("t2", "t1", "t2"), "refused")
        if tr is not None:
            first.append(tr)
    down, back = first
    assert down.outage_id == back.outage_id and down.team_ids == back.team_ids == ("t1", "t2")
    assert down.down_since == back.down_since == T0 + timedelta(seconds=10)
    assert down.last_seen_at == T0 and down.failed_checks == 2 and down.error == "refused"
    assert back.at == T0 + timedelta(seconds=30)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bm-relay-"))  # short: a unix socket path has at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


class ServerEvents:
    """Every ``evt.server.*`` envelope on the bus, whichever metrics service instance published it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def start(self, url: str) -> ServerEvents:
        self.nc = await nats.connect(url)

        async def on(msg: Any) -> None:
            self.events.append(json.loads(msg.data))

        await self.nc.subscribe("evt.server.>", cb=on)
        await subscriptions_confirmed(self.nc)
        return self

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == type_]


@pytest.mark.slow
@pytest.mark.docker
async def test_a_stopped_engine_is_unreachable_once_and_back_once_across_a_restart(
    nats_server, database, unique, sock_dir
):
    relay = await Relay(sock_dir / "docker.sock").start()
    seen = await ServerEvents().start(nats_server.url)
    team = f"team-{unique}"
    settings: dict[str, Any] = {"metrics_docker_url": relay.url, "metrics_server_down_after": 2}
    try:
        async with containers() as made:
            made.append(run_busybox(labels={"berth.team": team, "berth.app": f"a-{unique}"}, command=["sleep", "600"]))
            async with metrics_service(nats_server.url, database, **settings) as running:
                collector = running.ctx.extra["collector"]
                await eventually(lambda: team in collector.teams(), 30)
                await relay.stop()
                down = (await eventually(lambda: seen.of("evt.server.unreachable"), 30))[0]
                assert down["server"] == "test-vm" and down["failed_checks"] == 2 and team in down["team_ids"]
                assert down["last_seen_at"] is not None and "did not answer 2 collections" in down["reason"]
                count = collector_count(running)
                await eventually(lambda: collector_count(running) >= count + 3, 30)  # still down: said once
                assert len(seen.of("evt.server.unreachable")) == 1 and seen.of("evt.server.back") == []

            async with metrics_service(nats_server.url, database, **settings) as running:  # restarted, still down
                count = collector_count(running)
                await eventually(lambda: collector_count(running) >= count + 4, 30)
                assert len(seen.of("evt.server.unreachable")) == 1 and seen.of("evt.server.back") == []
                await relay.start()
                back = (await eventually(lambda: seen.of("evt.server.back"), 30))[0]
                assert back["outage_id"] == down["outage_id"] and back["down_since"] == down["down_since"]
                assert team in back["team_ids"] and back["down_for_s"] > 2
                count = collector_count(running)
                await eventually(lambda: collector_count(running) >= count + 3, 30)
                assert len(seen.of("evt.server.back")) == 1 and len(seen.of("evt.server.unreachable")) == 1
    finally:
        await relay.stop()
        await seen.nc.close()


def collector_count(running: Any) -> int:
    """Collections the service made (its histogram's count)."""
    from berth_metrics.adapters.prom import COLLECT_SECONDS

    for metric in COLLECT_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return int(sample.value)
    return 0


async def test_an_answering_engine_writes_no_state(sessionmaker):
    """Answers while up change nothing worth a row: the table stays empty (no write per collection)."""
    import sqlalchemy as sa

    from berth_common.bus import Bus
    from berth_metrics.usecases.reachability import ReachabilityWatch

    watch = ReachabilityWatch(Bus("metrics", "nats://127.0.0.1:1"), sessionmaker, Limits(down_after=2), 10.0)
    await watch.load()
    for i in range(3):
        assert await watch.observe("vm1", True, T0 + timedelta(seconds=i)) is None
    assert await watch.observe("vm1", False, T0 + timedelta(seconds=5), ("t1",), "refused") is None
    async with sessionmaker() as s:
        rows = (await s.execute(sa.text("SELECT server, status, failures FROM server_health"))).all()
    assert rows == [("vm1", "up", 1)]
