"""Restore drills: carries out ``cmd.backup.drill`` and answers with ``evt.backup.drill_succeeded`` or
``evt.backup.drill_failed``; the restore's progress goes out as log lines on ``log.<drill_id>``.

The object is the one the command names, or (none named: a schedule's drill) the newest verified backup
of its database in its origin, from the scheduler's own records. A drill then starts a scratch container of the engine's image (through the image map) on the drill's server
(``domain.drills.scratch``: random password, no network, no volume kept), waits until it accepts
connections, restores the object into it exactly as a restore does (``usecases.restores``: the SHA-256
checked while it streams, the engine's restore tool reading it on stdin; Redis restarts on the restored
RDB, waited for again), runs the check through the engine's exec (``psql`` or ``mariadb`` in a read-only
transaction, ``redis-cli``; the password in the exec's environment) and reports what it found. The scratch container is removed whatever happened; one left by a scheduler that stopped
mid-drill is removed by the sweep of any scheduler once its deadline label passed.

Idempotent on the message: a message already recorded is skipped before anything starts, and the answer
is written in the transaction that records the message id (a drill cut short by a restart runs again from
the start, in a new scratch container: it changes nothing but its own container).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from berth_common import dbengines, sealing
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import (
    BackupSource,
    DrillBackup,
    DrillFailed,
    DrillSucceeded,
    DrillValue,
    RestoreBackup,
    S3Destination,
)
from berth_common.db import Transactions, Unit
from berth_common.db.tables import processed_messages
from berth_common.docker import DockerUnavailable
from berth_common.images import image_map, resolve_image
from berth_common.labels import KIND, MANAGED
from berth_common.logging import get_logger
from berth_scheduler.adapters.backup_sinks import SinkError
from berth_scheduler.adapters.db_engine import DatabaseEngine, wait_ready
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.drill_store import Newest, newest_object
from berth_scheduler.adapters.exec_stream import run_small
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain import drills as dom
from berth_scheduler.domain.backups import StreamError
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.dumps import Exec
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.backup_upkeep import masked
from berth_scheduler.usecases.backups import BackupError
from berth_scheduler.usecases.periodic import Periodic
from berth_scheduler.usecases.restores import Restores

log = get_logger(__name__)
BEAT_S = 10.0


class DrillError(RuntimeError):
    """Why a drill failed, for a person (never a secret)."""


@dataclass
class Attempt:
    """What one drill found: the values read, how long the restore took, why it failed."""

    started: float
    backup_id: str = ""  # the backup drilled, once known
    values: list[DrillValue] = field(default_factory=list)
    restore_s: float | None = None
    reason: str | None = None


@dataclass
class Drills:
    transactions: Transactions
    docker: Callable[[str], Awaitable[DockerExecutor]]  # a server's executor (``Fleet.docker``)
    restores: Restores  # the restore streaming, used as it is
    image_map_setting: str = ""
    timeout_s: float = 6 * 3600.0  # a drill longer than this fails, and its container is swept after it
    ready_timeout_s: float = 180.0
    pull_timeout_s: float = 900.0
    limits: BackgroundLimits = DEFAULT_LIMITS  # of the scratch container
    interval_s: float = 0.5
    clock: Callable[[], float] = time.time
    _servers: set[str] = field(default_factory=lambda: {LOCAL}, init=False)
    _sweeper: Periodic | None = field(default=None, init=False)

    # --- the command ---------------------------------------------------------------------------

    async def drill(self, msg: DrillBackup, delivery: Delivery) -> None:
        if await self._seen(delivery):
            log.info("duplicate drill skipped", drill_id=msg.drill_id)
            return
        attempt = Attempt(self.clock(), backup_id=msg.backup_id or "")
        password = dbengines.new_password()
        name = dom.scratch_name(msg.drill_id)
        self._servers.add(msg.server_id)
        beat = asyncio.create_task(_keep_in_progress(delivery))
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._run(msg, delivery, password, attempt)
        except TimeoutError:
            attempt.reason = f"the drill did not finish within {self.timeout_s:g} s"
        except dom.CheckFailed as exc:
            attempt.reason, attempt.values = f"the check failed: {exc}", exc.values
        except (DrillError, BackupError, SinkError, DockerOperationError, DockerUnavailable, ServerRefusedError) as exc:
            attempt.reason = str(exc)
        except StreamError as exc:  # damaged, truncated, or another team key
            attempt.reason = f"the backup object cannot be read: {exc}"
        except sealing.SealingError:
            attempt.reason = "a sealed secret of the command cannot be opened (BERTH_SECRET_KEY)"
        except Exception as exc:  # a bug must still end the drill failed, and its container removed
            log.exception("drill broke", drill_id=msg.drill_id)
            attempt.reason = f"internal error: {type(exc).__name__}"
        finally:
            beat.cancel()
            await self._remove(msg.server_id, name)
        if attempt.reason is not None:
            attempt.reason = masked(attempt.reason, [password, *_secrets(msg)])[:4000]
        await self.transactions.run(lambda unit: self._finish(unit, msg, attempt), delivery=delivery)

    async def _seen(self, delivery: Delivery) -> bool:
        """The message was recorded already (answered before): nothing is started for it again."""
        query = sa.select(processed_messages.c.message_id).where(
            processed_messages.c.consumer == delivery.consumer,
            processed_messages.c.message_id == delivery.envelope.id,
        )
        async with self.transactions.sessionmaker() as session:
            return (await session.execute(query)).first() is not None

    async def _finish(self, unit: Unit, msg: DrillBackup, attempt: Attempt) -> None:
        ids: dict[str, Any] = {
            "drill_id": msg.drill_id,
            "backup_id": attempt.backup_id,
            "team_id": msg.team_id,
            "database_id": msg.database_id,
            "check": dom.describe(msg.check),
            "values": attempt.values,
            "restore_s": attempt.restore_s,
            "duration_s": max(0.0, self.clock() - attempt.started),
        }
        if attempt.reason is not None:
            await unit.emit(DrillFailed(**ids, reason=attempt.reason), id=f"drill-ended-{msg.drill_id}")
            log.warning("drill failed", drill_id=msg.drill_id, reason=attempt.reason)
            return
        await unit.emit(DrillSucceeded(**ids), id=f"drill-ended-{msg.drill_id}")
        log.info("drill succeeded", drill_id=msg.drill_id, restore_s=attempt.restore_s)

    # --- the drill -------------------------------------------------------------------------------

    async def _object(self, msg: DrillBackup) -> Newest:
        """The object the command names, or the newest verified backup of its database in its origin."""
        if msg.backup_id and msg.key and msg.sha256 and msg.compression:
            return Newest(msg.backup_id, msg.key, msg.sha256, msg.compression)
        async with self.transactions.sessionmaker() as session:
            newest = await newest_object(session, msg.database_id, msg.origin.name, msg.engine)
        if newest is None:
            raise DrillError(f"no verified backup of database {msg.database_id} in {msg.origin.name} to drill")
        return newest

    async def _run(self, msg: DrillBackup, delivery: Delivery, password: str, attempt: Attempt) -> None:
        obj = await self._object(msg)
        attempt.backup_id = obj.backup_id
        docker = await self.docker(msg.server_id)
        engine = DatabaseEngine(docker)
        eng = dbengines.engine(msg.engine)
        try:
            official = eng.image(msg.version or eng.default_version)
        except ValueError as exc:  # a version the engine table does not offer
            raise DrillError(str(exc)) from None
        image = resolve_image(official, image_map(self.image_map_setting))
        if not await engine.has_image(image):
            await engine.pull(image, self.pull_timeout_s)
        made = dom.scratch(msg, image, password, attempt.started + self.timeout_s + 60, self.limits)
        await docker.remove(made.name)  # one left by an earlier attempt of this drill
        await docker.create(ContainerSpec(name=made.name, service=dom.KIND, kind=dom.KIND, replica=1, body=made.body))
        await docker.start(made.name)
        await self._ready(engine, made.name, msg.engine, password)
        # the restore a drill is: handed to the restore streaming as it is, never published
        user, admin_database = dom.ADMIN[msg.engine]
        target = BackupSource(
            server_id=msg.server_id,
            container=made.name,
            engine=msg.engine,
            database=msg.database,
            user=user,
            password=SecretStr(password),
        )
        restore = RestoreBackup.model_validate(
            {
                "restore_id": msg.drill_id,
                "backup_id": obj.backup_id,
                "team_id": msg.team_id,
                "database_id": msg.database_id,
                "origin": msg.origin,
                "key": obj.key,
                "sha256": obj.sha256,
                "compression": obj.compression,
                "target": target,
                "source_database": msg.database,
                "encryption": msg.encryption,
            }
        )
        restore_started = self.clock()
        await self.restores._run(restore, delivery)
        if msg.engine == "redis":  # restarted on the restored RDB: loaded once it answers again
            await self._ready(engine, made.name, msg.engine, password)
        attempt.restore_s = max(0.0, self.clock() - restore_started)
        database = msg.check_database or msg.database or admin_database
        plan = dom.check_plan(msg.check, msg.engine, database, password)
        for step in plan.prepare:
            await _run_check(docker, made.name, step)
        outputs = [await _run_check(docker, made.name, step) for step in plan.checks]
        attempt.values = dom.evaluate_all(msg.check, msg.engine, outputs)

    async def _ready(self, engine: DatabaseEngine, name: str, engine_name: str, password: str) -> None:
        check = dom.readiness(engine_name, password)
        problem = await wait_ready(engine, name, check, self.ready_timeout_s, self.interval_s)
        if problem is not None:
            raise DrillError(f"the scratch database {problem}")

    async def _remove(self, server_id: str, name: str) -> None:
        try:
            await (await self.docker(server_id)).remove(name)
        except Exception as exc:  # the sweep removes it once its deadline passed
            log.warning("drill container not removed", container=name, error=str(exc))

    # --- drill containers left by a scheduler that stopped ---------------------------------------

    async def sweep(self) -> int:
        """Remove every drill container whose deadline passed, on the servers drills ran on (and local)."""
        removed = 0
        now = self.clock()
        for server_id in sorted(self._servers):
            docker = await self.docker(server_id)
            for info in await docker.list_containers({MANAGED: "true", KIND: dom.KIND}):
                if dom.expired(info.labels, now):
                    await docker.remove(info.name)
                    log.info("stale drill container removed", container=info.name, server_id=server_id)
                    removed += 1
        return removed

    def start_sweeper(self, interval_s: float) -> None:
        self._sweeper = Periodic("drill sweep", self.sweep)
        self._sweeper.start(interval_s)

    async def stop(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()


async def _run_check(docker: DockerExecutor, container: str, step: Exec) -> str:
    """A step of the check in the scratch container: its output (DrillError when it did not exit 0)."""
    code, out, err = await run_small(docker, container, step)
    if code != 0:
        tool = step.argv[0]
        raise DrillError(f"the check could not run: {tool} exited with code {code}: {(err or out).strip()[:2000]}")
    return out


def _secrets(msg: DrillBackup) -> list[str]:
    if isinstance(msg.origin, S3Destination):
        with contextlib.suppress(sealing.SealingError):
            return [msg.origin.reveal()]
    return []


async def _keep_in_progress(delivery: Delivery) -> None:
    while True:
        await asyncio.sleep(BEAT_S)
        with contextlib.suppress(Exception):
            await delivery.in_progress()
