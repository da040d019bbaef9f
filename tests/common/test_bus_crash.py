"""Exactly one effect when the consuming process is SIGKILLed mid-message and restarted (real processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from berth_common.bus.streams import CMD_STREAM, EVT_STREAM
from berth_common.catalogue import PingService
from berth_common.db import make_engine
from tests.support.bus_helpers import connected_bus, consumer_info, prepare_schema, stream_messages, wait_until
from tests.support.bus_worker import effects

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "worker"
ACK_WAIT = 1.5


async def _prepare_schema(db_url: str) -> None:
    await prepare_schema(db_url, SCHEMA, effects)


class Worker:
    def __init__(self, tmp: Path, nats_url: str, db_url: str, crash: str) -> None:
        self.tmp, self.nats_url, self.db_url, self.crash = tmp, nats_url, db_url, crash
        self.marker, self.log, self.ready = tmp / "marker", tmp / "calls.log", tmp / "ready"
        self.marker.write_text("first")
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.support.bus_worker", "--nats", self.nats_url, "--db", self.db_url]
        argv += ["--schema", SCHEMA, "--marker", str(self.marker), "--log", str(self.log), "--ready", str(self.ready)]
        argv += ["--crash", self.crash, "--ack-wait", str(ACK_WAIT)]
        out = (self.tmp / "worker.out").open("ab")
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        await wait_until(lambda: self.ready.exists() or self.proc.poll() is not None, timeout=30)
        assert self.ready.exists(), (self.tmp / "worker.out").read_text()

    async def wait_exit(self, timeout: float = 30) -> int:
        assert self.proc is not None
        await wait_until(lambda: self.proc.poll() is not None, timeout=timeout)
        return self.proc.returncode

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return await self.wait_exit()

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


async def _effect_count(db_url: str, nonce: str) -> int | None:
    engine = make_engine(db_url, SCHEMA)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(effects.c.count).where(effects.c.nonce == nonce))).first()
    await engine.dispose()
    return None if row is None else int(row[0])


@pytest.mark.parametrize("crash", ["after_commit", "before_commit"])
async def test_sigkill_then_restart_has_exactly_one_effect(crash, nats_server, database, tmp_path, unique):
    await _prepare_schema(database)
    worker = Worker(tmp_path, nats_server.url, database, crash)
    await worker.start()
    api = await connected_bus("api", nats_server.url)
    try:
        await api.publish(PingService(nonce=unique))
        # the worker handles the command and kills itself at the chosen point
        assert await worker.wait_exit() == -9
        assert worker.marker.read_text() == "crashed"
        assert await _effect_count(database, unique) == (1 if crash == "after_commit" else None)
        assert worker.calls() == ["delivery 1", "handler 1"]
        info = await consumer_info(api, CMD_STREAM, "worker", PingService.TYPE)
        assert info.num_ack_pending == 1  # delivered, never acked

        await worker.start()  # restart: the message comes back after ack_wait

        async def settled() -> bool:
            info = await consumer_info(api, CMD_STREAM, "worker", PingService.TYPE)
            return info.num_ack_pending == 0 and await stream_messages(api, CMD_STREAM) == 0

        await wait_until(settled, timeout=ACK_WAIT * 6)
        assert await _effect_count(database, unique) == 1
        calls = worker.calls()
        assert "delivery 2" in calls, calls
        if crash == "after_commit":
            # the redelivery found the message id recorded: the handler did not run again
            assert calls == ["delivery 1", "handler 1", "delivery 2"]
        else:
            assert calls == ["delivery 1", "handler 1", "delivery 2", "handler 2"]
        # the event the handler emitted was published once (outbox + JetStream de-duplication)
        await asyncio.sleep(0.3)
        assert await stream_messages(api, EVT_STREAM) == 1
        assert await worker.stop() == 0
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
        await api.close()


async def test_graceful_stop_then_restart_does_not_redeliver(nats_server, database, tmp_path, unique):
    """SIGTERM lets the worker ack what it handled: a restarted worker sees nothing again."""
    await _prepare_schema(database)
    worker = Worker(tmp_path, nats_server.url, database, "none")
    await worker.start()
    api = await connected_bus("api", nats_server.url)
    try:
        for i in range(5):
            await api.publish(PingService(nonce=f"{unique}-{i}"))
        await wait_until(lambda: worker.calls().count("handler 1") == 5, timeout=10)
        assert await worker.stop() == 0
        await worker.start()
        await asyncio.sleep(ACK_WAIT * 2)
        assert len(worker.calls()) == 10  # five deliveries, five handler runs, nothing after the restart
        assert await stream_messages(api, CMD_STREAM) == 0
        assert await worker.stop() == 0
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
        await api.close()
