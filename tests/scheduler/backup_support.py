"""What the backup tests share: the scheduler as a process (as deployed, so it can be killed), a harness
that publishes backup commands as the api would and collects ``evt.backup.*``, ``evt.restore.*`` and log
lines, and a PostgreSQL container started by the test (on this machine's engine or a test server's)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from berth_common import sealing
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import BackupSource, S3Destination, StartBackup
from tests.support.images import TEST_LABEL, docker, postgres_image
from tests.support.s3 import MotoS3

REPO = Path(__file__).resolve().parents[2]
SEALING_KEY = "berth-tests-sealing-key"  # the tests' process seals with it (tests/conftest.py)
PG_PASSWORD = "pg-pw-never-shown-7c1"


@dataclass
class SchedulerProcess:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SchedulerProcess:
        out = self.log_path.open("ab")
        argv = [sys.executable, "-c", "from berth_scheduler.bootstrap import main; main()"]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Harness:
    nats_url: str
    db_url: str
    s3: MotoS3
    tmp: Path
    container: str
    bucket: str
    scheduler: SchedulerProcess
    server_id: str = "local"
    cli: Callable[..., str] = docker  # the docker CLI of the engine the database runs on
    api: Bus | None = None
    nc: Any = None
    seen: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    async def start(self) -> Harness:
        # commands are sealed with the scheduler process's key (a service served in-process by an earlier
        # test made its own key the current one; the ones before still open)
        sealing.configure(SEALING_KEY, keep_open=True)
        self.nc = await nats.connect(self.nats_url)

        async def on_msg(msg: Any) -> None:
            self.raw.append(msg.data)
            self.seen.append({**json.loads(msg.data), "_subject": msg.subject})

        for subject in ("evt.backup.>", "evt.restore.>", "log.>"):
            await self.nc.subscribe(subject, cb=on_msg)
        await subscriptions_confirmed(self.nc)
        self.api = Bus("api", self.nats_url)
        await self.api.connect()
        self.scheduler.start()
        return self

    async def close(self) -> None:
        self.scheduler.stop()
        if self.api:
            await self.api.close()
        if self.nc:
            await self.nc.close()

    def s3_destination(self, **change: Any) -> S3Destination:
        values = {
            "endpoint": self.s3.endpoint,
            "bucket": self.bucket,
            "prefix": "team1/",
            "access_key": self.s3.access_key,
            "secret_key": self.s3.secret_key,
            "outbound_allow": ["127.0.0.1"],  # the test's store (moto) is on loopback: allowed explicitly
            **change,
        }
        return S3Destination(**values)

    def source(self, database: str | None = "shop") -> BackupSource:
        return BackupSource(
            server_id=self.server_id,
            container=self.container,
            engine="postgresql",
            database=database,
            user="postgres",
            password=PG_PASSWORD,
        )

    async def backup(self, backup_id: str, *, destinations: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
        cmd = StartBackup(
            backup_id=backup_id,
            team_id="team1",
            database_id="db1",
            source=fields.pop("source", None) or self.source(),
            destinations=destinations or [self.s3_destination()],
            **fields,
        )
        assert self.api is not None
        await self.api.publish(cmd)
        return await self.outcome("evt.backup.", "backup_id", backup_id)

    async def outcome(self, family: str, key: str, value: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for env in self.seen:
                if env["type"] in (f"{family}succeeded", f"{family}failed") and env["data"][key] == value:
                    return env
            await asyncio.sleep(0.1)
        log = self.scheduler.log_path.read_text()[-3000:]
        raise AssertionError(f"no outcome for {value} within {timeout}s; scheduler log:\n{log}")

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == type_]

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.cli("exec", self.container, "psql", "-U", "postgres", "-d", database, "-At", "-c", sql)

    def checksum(self, database: str = "shop") -> str:
        return self.psql(
            "SELECT count(*) || ':' || md5(string_agg(id || '=' || name, ',' ORDER BY id)) FROM items", database
        )


def start_postgres(unique: str, cli: Callable[..., str] = docker) -> str:
    """A PostgreSQL container (the engine ``cli`` speaks to), ready for queries."""
    return wait_postgres(run_postgres(unique, cli), cli)


def run_postgres(unique: str, cli: Callable[..., str] = docker) -> str:
    """A PostgreSQL container started, not yet ready (the caller prepares the rest meanwhile, then waits)."""
    name = f"berth-test-pg-{unique}"
    cli("run", "-d", "--name", name, "--label", TEST_LABEL, "-e", f"POSTGRES_PASSWORD={PG_PASSWORD}", postgres_image())
    return name


def wait_postgres(name: str, cli: Callable[..., str] = docker) -> str:
    """``name`` once its PostgreSQL answers queries (within a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if cli("exec", name, "psql", "-U", "postgres", "-At", "-c", "SELECT 1").strip() == "1":
                return name
        except RuntimeError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"postgres in {name} not ready: {cli('logs', name)[-2000:]}")


def fill(h: Harness) -> None:
    """A database ``shop`` with 20000 known rows."""
    h.psql("CREATE DATABASE shop")
    h.psql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)", "shop")
    h.psql("INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 20000) i", "shop")


def scheduler_env(nats_url: str, database_url: str) -> dict[str, str]:
    """The scheduler process's settings: short heartbeats so an interrupted backup is seen in seconds."""
    import os

    return {
        **os.environ,
        "BERTH_NATS_URL": nats_url,
        "BERTH_DATABASE_URL": database_url,
        "BERTH_SECRET_KEY": SEALING_KEY,
        "BERTH_HTTP_PORT": "0",
        "BERTH_LOG_FORMAT": "json",
        "BERTH_BACKUP_PART_MB": "5",
        "BERTH_BACKUP_HEARTBEAT_S": "0.5",
        "BERTH_BACKUP_STALE_S": "3",
        "BERTH_BACKUP_SWEEP_S": "1",
        "BERTH_ACK_WAIT_S": "60",
    }
