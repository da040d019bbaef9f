"""Schedules on the real scheduler (its own process, the real bus and Postgres), time moved by a clock file.

A schedule every minute publishes its ``cmd.backup.start``-typed command exactly once per due time; a
scheduler SIGKILLed across due times reports one ``evt.schedule.missed`` after the restart and runs once to
catch up, never twice; a removed schedule stops; a command type outside the allow-list is refused.

``cmd.backup.start`` has no model in this branch's catalogue: the schedule carries its data as opaque data
(it does not parse the command it publishes beyond its type), so the tests check exactly that data.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.bus.streams import EVT_STREAM
from berth_common.catalogue import RemoveSchedule, SetSchedule
from berth_common.db import make_engine
from berth_common.envelope import Envelope
from tests.support.bus_helpers import Collector, connected_bus, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SETTLE_S = 2.5
SEALED = (
    "sealed:v2:stands-for-a-sealed-password"  # the loop runs every 0.2 s: what has not happened by then does not happen
)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, 0, minute, second, tzinfo=UTC)


@dataclass
class SchedulerProcess:
    tmp: Path
    nats_url: str
    db_url: str
    name: str = "scheduler"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def clock(self) -> Path:
        return self.tmp / "clock"

    def set_clock(self, when: datetime) -> None:
        part = self.tmp / "clock.part"
        part.write_text(when.isoformat())
        part.replace(self.clock)

    async def start(self) -> None:
        ready = self.tmp / f"{self.name}.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.scheduler.schedule_process", "--nats", self.nats_url]
        argv += ["--db", self.db_url, "--clock", str(self.clock), "--ready", str(ready)]
        out = self.output.open("ab")
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        await wait_until(lambda: ready.exists() or self.proc.poll() is not None, timeout=60)
        assert ready.exists(), self.output.read_text()[-4000:]

    @property
    def output(self) -> Path:
        return self.tmp / f"{self.name}.out"

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown (nothing drains, the leadership lock goes with the connection)."""
        assert self.proc is not None
        self.proc.kill()
        await wait_until(lambda: self.proc.poll() is not None, timeout=30)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await wait_until(lambda: self.proc.poll() is not None, timeout=30)
            except AssertionError:
                self.proc.kill()


@dataclass
class World:
    scheduler: SchedulerProcess
    api: Bus
    commands: Collector
    events: Collector
    dead: Collector
    db: Any

    def published(self) -> list[dict[str, Any]]:
        return [env for env, _ in self.commands.items]

    def ids(self) -> list[str]:
        """Distinct ids of the commands published, in order (a publish the relay repeats has the same id)."""
        return list(dict.fromkeys(env["id"] for env in self.published()))

    def of(self, type_: str) -> list[dict[str, Any]]:
        """The data of the events of ``type_``, once per id (after a SIGKILL the outbox relay may publish an
        event again whose publish was not yet marked done: JetStream keeps one, a core subscriber sees two)."""
        found = {env["id"]: env["data"] for env, _ in self.events.items if env["type"] == type_}
        return list(found.values())

    async def in_stream(self, subject: str) -> int:
        """How many events JetStream holds on ``subject`` (it drops a second publish of an id)."""
        info = await self.api.js.stream_info(EVT_STREAM, subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0)

    async def staged(self) -> list[str]:
        """The ids of the commands the scheduler wrote to its outbox (one row per id), oldest first."""
        async with self.db.connect() as conn:
            query = "SELECT id FROM scheduler.outbox WHERE subject = 'cmd.backup.start' ORDER BY created_at"
            return [str(i) for i in (await conn.execute(sa.text(query))).scalars()]

    async def set(self, revision: int = 1, **change: Any) -> None:
        values: dict[str, Any] = {
            "schedule_id": "nightly",
            "team_id": "team-1",
            "revision": revision,
            "cron": "* * * * *",
            "timezone": "Europe/Berlin",
            "grace_s": 30,
            "command_type": "cmd.backup.start",
            "command": {"team_id": "team-1", "database_id": "db-1", "password": SEALED},
            "target_id": "db-1",
        }
        await self.api.publish(SetSchedule(**(values | change)))

    async def row(self) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(sa.text("SELECT * FROM scheduler.schedules WHERE id = 'nightly'"))).first()

    async def fired(self, n: int) -> None:
        await wait_until(lambda: len(self.of("evt.schedule.fired")) >= n and len(self.ids()) >= n, timeout=20)


@pytest.fixture
async def world(nats_server, database, tmp_root, unique) -> AsyncIterator[World]:
    from berth_common.db.provision import provision

    urls = await provision(database, "test-secret", ("scheduler",))
    tmp = tmp_root / f"schedules-{unique}"
    tmp.mkdir()
    scheduler = SchedulerProcess(tmp, nats_server.url, urls["scheduler"])
    scheduler.set_clock(at(0, 30))
    commands = await Collector().start(nats_server.url, "cmd.backup.start")
    events = await Collector().start(nats_server.url, "evt.schedule.>")
    dead = await Collector().start(nats_server.url, "evt.bus.dead_lettered")
    db = make_engine(urls["scheduler"], "scheduler")
    await scheduler.start()
    api = await connected_bus("api", nats_server.url)
    w = World(scheduler, api, commands, events, dead, db)
    yield w
    await scheduler.stop()
    await api.close()
    for c in (commands, events, dead):
        await c.close()
    await db.dispose()


def run_id(minute: int) -> str:
    return f"schedule-nightly-20260101T00{minute:02d}00Z"


async def test_every_minute_once_per_due_time_and_removed_stops(world: World) -> None:
    w = world
    await w.set()
    await wait_until(lambda: _has_row(w), timeout=20)
    row = await w.row()
    assert (row.next_due, row.cron, row.timezone, row.removed) == (at(1), "* * * * *", "Europe/Berlin", False)

    w.scheduler.set_clock(at(0, 59))
    await asyncio.sleep(SETTLE_S)
    assert w.published() == []  # not due yet

    w.scheduler.set_clock(at(1, 0))  # due exactly now
    await w.fired(1)
    w.scheduler.set_clock(at(1, 40))
    await asyncio.sleep(SETTLE_S)
    w.scheduler.set_clock(at(2, 5))
    await w.fired(2)
    await asyncio.sleep(SETTLE_S)

    assert w.ids() == [run_id(1), run_id(2)]
    assert len(w.published()) == 2  # each published once
    assert await w.staged() == [run_id(1), run_id(2)]
    for env, headers in w.commands.items:
        assert env["type"] == "cmd.backup.start" and env["source"] == "berth/scheduler"
        assert headers["Nats-Msg-Id"] == env["id"]
        assert env["data"] == {
            "team_id": "team-1",
            "database_id": "db-1",
            "password": SEALED,  # opaque to the schedule, published as it was given
            "backup_id": env["id"],  # each run is a new backup
        }
    fired = w.of("evt.schedule.fired")
    assert [(f["command_id"], f["due_at"], f["late_s"], f["catch_up"]) for f in fired] == [
        (run_id(1), "2026-01-01T00:01:00Z", 0.0, False),
        (run_id(2), "2026-01-01T00:02:00Z", 5.0, False),
    ]
    assert {(f["schedule_id"], f["team_id"], f["command_type"], f["target_id"]) for f in fired} == {
        ("nightly", "team-1", "cmd.backup.start", "db-1")
    }
    assert w.of("evt.schedule.missed") == []
    row = await w.row()
    assert (row.next_due, row.last_due, row.last_command_id) == (at(3), at(2), run_id(2))
    # the command's data (its sealed secrets) is in no event and no log line of the scheduler
    assert all("password" not in env["data"] and SEALED not in str(env) for env, _ in w.events.items)
    assert SEALED not in w.scheduler.output.read_text()

    # a repeated or older change is a no-op; a newer one with the same timing keeps the next due time
    await w.set(revision=1, cron="*/5 * * * *")
    await w.set(revision=2, grace_s=60)
    await wait_until(lambda: _row_where(w, "revision = 2"), timeout=20)
    row = await w.row()
    assert (row.cron, row.grace_s, row.next_due) == ("* * * * *", 60, at(3))

    await w.api.publish(RemoveSchedule(schedule_id="nightly", team_id="team-1", revision=3))
    await wait_until(lambda: _row_where(w, "removed"), timeout=20)
    await w.set(revision=2)  # a change older than the removal, delivered late: still removed
    w.scheduler.set_clock(at(9, 0))
    await asyncio.sleep(SETTLE_S)
    row = await w.row()
    assert (row.removed, row.next_due, row.revision) == (True, None, 3)
    assert w.ids() == [run_id(1), run_id(2)]
    assert len(w.of("evt.schedule.fired")) == 2 and w.of("evt.schedule.missed") == []


async def test_killed_across_due_times_reports_one_miss_and_catches_up_once(world: World) -> None:
    w = world
    await w.set()
    await wait_until(lambda: _has_row(w), timeout=20)
    w.scheduler.set_clock(at(1, 2))
    await w.fired(1)

    backup_missed = await Collector().start(w.api.url, "evt.backup.missed")
    await w.scheduler.kill()  # no clean shutdown, then three due times pass (00:02, 00:03, 00:04)
    w.scheduler.set_clock(at(4, 20))
    await w.scheduler.start()
    await w.fired(2)
    await wait_until(lambda: len(w.of("evt.schedule.missed")) >= 1, timeout=10)
    await asyncio.sleep(SETTLE_S)

    assert w.of("evt.schedule.missed") == [
        {
            "schedule_id": "nightly",
            "team_id": "team-1",
            "command_type": "cmd.backup.start",
            "target_id": "db-1",
            "due_at": "2026-01-01T00:02:00Z",
            "late_s": 140.0,
            "grace_s": 30,
            "reason": "the scheduler was not running",
        }
    ]
    # a backup's schedule: the backup family says it too (the notifier tells this one, not the generic one)
    await wait_until(lambda: bool(backup_missed.items), timeout=10)
    assert list({env["id"]: env["data"] for env, _ in backup_missed.items}.values()) == [
        {
            "backup_id": run_id(2),
            "team_id": "team-1",
            "database_id": "db-1",
            "schedule_id": "nightly",
            "due_at": "2026-01-01T00:02:00+00:00",
            "reason": "the scheduler was not running",
        }
    ]
    fired = [(f["command_id"], f["catch_up"]) for f in w.of("evt.schedule.fired")]
    assert fired == [(run_id(1), False), (run_id(2), True)]  # one catch-up run, not one per missed minute
    assert w.ids() == [run_id(1), run_id(2)]
    assert (await w.in_stream("evt.schedule.fired"), await w.in_stream("evt.schedule.missed")) == (2, 1)
    assert await w.staged() == [run_id(1), run_id(2)]
    row = await w.row()
    assert (row.next_due, row.last_due) == (at(5), at(2))

    # killed again right after the catch-up, restarted at the same time: nothing runs twice
    await w.scheduler.kill()
    await w.scheduler.start()
    await asyncio.sleep(SETTLE_S)
    assert w.ids() == [run_id(1), run_id(2)]
    assert len(w.of("evt.schedule.missed")) == 1

    w.scheduler.set_clock(at(5, 1))  # back on time: the next due time runs as usual
    await w.fired(3)
    await asyncio.sleep(SETTLE_S)
    assert w.ids() == [run_id(1), run_id(2), run_id(5)]
    assert [f["catch_up"] for f in w.of("evt.schedule.fired")] == [False, True, False]
    assert len(w.of("evt.schedule.missed")) == 1
    assert (await w.in_stream("evt.schedule.fired"), await w.in_stream("evt.schedule.missed")) == (3, 1)
    assert await w.staged() == [run_id(1), run_id(2), run_id(5)]


async def test_a_command_type_outside_the_allow_list_is_refused(world: World) -> None:
    w = world
    data = {
        "schedule_id": "sneaky",
        "team_id": "team-1",
        "revision": 1,
        "cron": "* * * * *",
        "timezone": "UTC",
        "command_type": "cmd.application.remove",
        "command": {"application_id": "app-1", "team_id": "team-1"},
    }
    with pytest.raises(ValueError, match=re.escape("a schedule cannot publish 'cmd.application.remove'")):
        SetSchedule(**data)
    # sent anyway, bypassing the model: the scheduler refuses it (dead letter), and nothing is scheduled
    env = Envelope(source="berth/api", type="cmd.schedule.set", data=data)
    await w.api.publish_envelope("cmd.schedule.set", env)
    await wait_until(lambda: any(e["data"]["original_id"] == env.id for e, _ in w.dead.items), timeout=20)
    async with w.db.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM scheduler.schedules"))).scalar() == 0
    w.scheduler.set_clock(at(3, 0))
    await asyncio.sleep(SETTLE_S)
    assert w.events.items == [] and w.published() == []


async def _has_row(w: World) -> bool:
    return await w.row() is not None


async def _row_where(w: World, condition: str) -> bool:
    async with w.db.connect() as conn:
        query = f"SELECT 1 FROM scheduler.schedules WHERE id = 'nightly' AND {condition}"
        return (await conn.execute(sa.text(query))).first() is not None


async def test_two_schedulers_run_each_due_time_once_and_the_standby_takes_over(world: World) -> None:
    w = world
    standby = SchedulerProcess(w.scheduler.tmp, w.scheduler.nats_url, w.scheduler.db_url, name="standby")
    await standby.start()
    try:
        await w.set()
        await wait_until(lambda: _has_row(w), timeout=20)
        w.scheduler.set_clock(at(1, 0))
        await w.fired(1)
        await asyncio.sleep(SETTLE_S)
        assert w.ids() == [run_id(1)] and len(w.published()) == 1

        leads = "this scheduler drives the rollouts"
        assert leads in w.scheduler.output.read_text() and leads not in standby.output.read_text()
        await w.scheduler.kill()  # the leader; the standby takes the lock over
        w.scheduler.set_clock(at(2, 10))
        await w.fired(2)
        await asyncio.sleep(SETTLE_S)
        assert w.ids() == [run_id(1), run_id(2)]
        assert await w.staged() == [run_id(1), run_id(2)]
        assert await w.in_stream("evt.schedule.fired") == 2
        assert [(f["command_id"], f["late_s"], f["catch_up"]) for f in w.of("evt.schedule.fired")] == [
            (run_id(1), 0.0, False),
            (run_id(2), 10.0, False),
        ]
        assert w.of("evt.schedule.missed") == []
        assert leads in standby.output.read_text()
    finally:
        await standby.stop()
