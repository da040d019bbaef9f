"""Restores: carries out ``cmd.backup.restore`` and answers with ``evt.restore.succeeded`` or
``evt.restore.failed``; progress goes out as log lines on ``log.<restore_id>``.

The stored object streams from its destination, its SHA-256 checked on the way against the one the backup
recorded, is decompressed and written to the stdin of the engine's restore tool in the target container
(``domain.dumps.restore_plan``: a new database made first, or, only with the command's explicit
confirmation, over the existing one). The restore is good when the tool exited 0 and the SHA-256 matched.
The stream runs in the backup worker process (``usecases.restore_worker``) for an object in S3 or on this
server's disk, here for one on another server's disk (read over SFTP).
A restore that writes over existing data (confirmed, every database, Redis, a volume over an existing one)
reads the object once first and refuses a wrong SHA-256 before anything is written
(``usecases.restore_checks``); a new database or volume whose object turns out wrong at the end is
removed again.
A volume is restored by a helper container running ``tar -x`` into a new volume (or, confirmed, into the
existing one emptied first), what the command names stopped meanwhile (``usecases.volume_dumps``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from berth_common import sealing
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.bus import Bus
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import BackupSource, LogLine, RestoreBackup, RestoreFailed, RestoreSucceeded, VolumeSource
from berth_common.db import Transactions, Unit
from berth_common.docker import LOCAL, DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import backup_store as store
from berth_scheduler.adapters.backup_process import WorkerError, run_worker
from berth_scheduler.adapters.backup_sinks import SinkError, Ssh, read_object
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.exec_stream import ExecStream, run_small
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.adapters.helper_container import HelperContainer, created
from berth_scheduler.domain import backups as dom
from berth_scheduler.domain import dumps
from berth_scheduler.domain import restore_checks as checks
from berth_scheduler.domain import volume_dumps as vol
from berth_scheduler.domain.backup_jobs import RestoreJob
from berth_scheduler.domain.dumps import Exec
from berth_scheduler.usecases import volume_dumps
from berth_scheduler.usecases.backup_offload import Target
from berth_scheduler.usecases.backup_upkeep import masked
from berth_scheduler.usecases.backups import BackupError
from berth_scheduler.usecases.redis_snapshot import redis_rdb
from berth_scheduler.usecases.restore_checks import check_before_writing, in_worker, remote_of, restore_job
from berth_scheduler.usecases.restore_stream import feed

log = get_logger(__name__)
BEAT_S = 10.0  # the message is kept in progress this often while the restore runs
INTERRUPTED = "the scheduler running this restore stopped before it finished; the target may be partly restored"


@dataclass
class Restores:
    transactions: Transactions
    docker: Callable[[str], Awaitable[DockerExecutor]]
    bus: Bus
    ssh: Ssh | None = None  # a server's SSH connection, for a backup in a directory on a remote server
    socket: volume_dumps.Socket | None = None  # a server's engine socket, to deliver the helper image
    target: Target | None = None  # a server's SSH target: the worker reads a directory there
    clock: Callable[[], float] = time.time
    timeout_s: float = 6 * 3600.0
    limits: BackgroundLimits = DEFAULT_LIMITS  # of the helper containers that empty and write a volume
    _seq: dict[str, int] = field(default_factory=dict, init=False)

    async def restore(self, msg: RestoreBackup, delivery: Delivery) -> None:
        started = self.clock()

        async def claim(unit: Unit) -> str | None:
            seen = await store.claim_restore(unit.session, msg.restore_id, msg.backup_id, started)
            if seen == "running":
                # delivered again while recorded running: the process running it stopped (a running restore
                # keeps its message in progress), so it ends failed here, announced, never stuck
                await self._finish(unit, msg, INTERRUPTED, started)
            return seen

        seen_state: str | None = await self.transactions.run(claim)
        if seen_state is not None:
            if seen_state == "running" and isinstance(msg.target, VolumeSource):
                with contextlib.suppress(Exception):
                    docker = await self.docker(msg.target.server_id)
                    await volume_dumps.resume_restore(docker, msg.target, msg.team_id, msg.restore_id)

            async def seen(unit: Unit) -> None:
                return None

            await self.transactions.run(seen, delivery=delivery)
            return
        reason: str | None = None
        beat = asyncio.create_task(_keep_in_progress(delivery))
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._run(msg, delivery)
        except TimeoutError:
            reason = f"the restore did not finish within {self.timeout_s:g} s"
        except (BackupError, SinkError, DockerOperationError, DockerUnavailable, ServerRefusedError) as exc:
            reason = str(exc)
        except volume_dumps.VolumeError as exc:
            reason = str(exc)
        except dom.StreamError as exc:  # damaged, truncated, or another team key
            reason = f"the backup object cannot be read: {exc}"
        except sealing.SealingError:
            reason = "the sealed password or backup key of the command cannot be opened (BERTH_SECRET_KEY)"
        except Exception as exc:
            log.exception("restore broke", restore_id=msg.restore_id)
            reason = f"internal error: {type(exc).__name__}"
        finally:
            beat.cancel()
        if reason is not None:
            with contextlib.suppress(sealing.SealingError):
                reason = masked(reason, [msg.target.reveal()] if isinstance(msg.target, BackupSource) else [])
            await self._log(msg.restore_id, f"restore failed: {reason}")
        else:
            await self._log(msg.restore_id, "restore finished")
        await self.transactions.run(lambda unit: self._finish(unit, msg, reason, started), delivery=delivery)

    async def _finish(self, unit: Unit, msg: RestoreBackup, reason: str | None, started: float) -> None:
        now = self.clock()
        await store.finish_restore(unit.session, msg.restore_id, "failed" if reason else "succeeded", reason, now)
        common = {
            "restore_id": msg.restore_id,
            "backup_id": msg.backup_id,
            "team_id": msg.team_id,
            "database_id": msg.database_id,
            "container": msg.target.volume if isinstance(msg.target, VolumeSource) else msg.target.container,
        }
        database = msg.target.database
        event = (
            RestoreFailed(**common, database=database, reason=reason)
            if reason
            else RestoreSucceeded(**common, database=database, duration_s=max(0.0, now - started))
        )
        await unit.emit(event, id=f"restore-ended-{msg.restore_id}")

    async def _log(self, restore_id: str, line: str) -> None:
        seq = self._seq.get(restore_id, 0)
        self._seq[restore_id] = seq + 1
        try:
            await self.bus.publish(
                LogLine(deployment_id=restore_id, stream="deploy", seq=seq, line=line[:16000]),
                id=f"log-{restore_id}-{seq}",
                nats_subject=f"log.{restore_id}",
            )
        except Exception as exc:  # progress is best effort; the outcome event is not
            log.warning("restore log line not sent", restore_id=restore_id, error=str(exc))

    async def _run(self, msg: RestoreBackup, delivery: Delivery) -> None:
        target = msg.target
        docker = await self.docker(target.server_id)
        if isinstance(target, VolumeSource):
            await self._volume(msg, delivery, docker, target)
            return
        password = target.reveal()
        rdb = await redis_rdb(docker, target.container, password) if target.engine == "redis" else "/data/dump.rdb"
        plan = dumps.restore_plan(
            target.engine,
            target.database,
            target.user,
            password,
            overwrite=msg.overwrite,
            rdb_path=rdb,
            from_database=msg.source_database,
        )
        into = f"database {target.database}" if target.database else "every database"
        how = "over the existing one" if msg.overwrite else "as a new database"
        await self._log(msg.restore_id, f"restoring {msg.key} into {target.container}, {into} ({how})")
        if checks.overwrites(target.engine, target.database, msg.overwrite):
            await self._check(msg, f"{into} of {target.container}")
        for step in plan.prepare:
            code, out, err = await run_small(docker, target.container, step)
            if code != 0:
                raise BackupError(f"{step.argv[0]} exited with code {code}: {(err or out).strip()[:2000]}")
        try:
            if self.socket is not None and in_worker(msg, remote=self.target is not None):
                remote = await remote_of(msg, self.target)
                where = await self.socket(target.server_id)
                job = restore_job(msg, where, target.container, plan.stream, attach=False, remote=remote)
                written = await self._in_worker(msg, delivery, job)
            else:
                async with (
                    read_object(msg.origin, msg.key, self.ssh) as chunks,
                    ExecStream(docker, target.container, plan.stream, stdin=True) as ex,
                ):
                    written = await self._feed(msg, delivery, chunks, ex)
        except BaseException:
            drop = checks.drop_new_database(target.engine, target.database, target.user, password)
            if plan.prepare and not msg.overwrite and drop is not None:  # the new database it made goes
                with contextlib.suppress(Exception):
                    await run_small(docker, target.container, drop)
                    await self._log(msg.restore_id, f"the new database {target.database} is removed again")
            raise
        await self._log(msg.restore_id, f"{written} bytes restored by {plan.stream.argv[0]}")
        for step in plan.finish:
            await run_small(docker, target.container, step)
        if plan.restart:
            await docker.restart(target.container)

    async def _volume(
        self, msg: RestoreBackup, delivery: Delivery, docker: DockerExecutor, target: VolumeSource
    ) -> None:
        how = "over the existing one, emptied first" if msg.overwrite else "as a new volume"
        await self._log(msg.restore_id, f"restoring {msg.key} into volume {target.volume} ({how})")
        await volume_dumps.helper_image(docker, target.server_id, self.socket, await self.docker(LOCAL))
        if msg.overwrite:
            await self._check(msg, f"volume {target.volume}")
        async with (
            volume_dumps.stopped(docker, target, msg.team_id),
            read_object(msg.origin, msg.key, self.ssh) as chunks,
        ):
            # the object is readable before the volume is made or emptied
            made = await volume_dumps.prepare_target(
                docker, target, msg.team_id, msg.restore_id, msg.overwrite, self.limits
            )
            name = vol.helper_name("restore", msg.restore_id)
            body = vol.restore_body(target.volume, self.limits)
            try:
                if self.socket is not None and in_worker(msg, remote=self.target is not None):
                    remote = await remote_of(msg, self.target)
                    async with created(docker, name, body):
                        where, tar = await self.socket(target.server_id), Exec([str(a) for a in body["Cmd"]])
                        job = restore_job(msg, where, name, tar, attach=True, remote=remote)
                        written = await self._in_worker(msg, delivery, job)
                else:
                    async with HelperContainer(docker, name, body) as helper:
                        written = await self._feed(msg, delivery, chunks, helper)
            except BaseException:
                if made:  # a volume this restore made and could not fill is not left behind
                    await volume_dumps.remove_volume(docker, target.volume)
                raise
        await self._log(msg.restore_id, f"{written} bytes restored by tar")

    async def _check(self, msg: RestoreBackup, into: str) -> None:
        """Read the stored object once and refuse unless its SHA-256 is the recorded one: nothing is
        written into ``into`` before."""
        await self._log(msg.restore_id, f"checking the SHA-256 of {msg.key} before writing into {into}")
        await check_before_writing(msg, self.ssh, into, self.target)
        await self._log(msg.restore_id, "the backup object is the one recorded (SHA-256 matches)")

    async def _in_worker(self, msg: RestoreBackup, delivery: Delivery, job: RestoreJob) -> int:
        """Stream the object into the tool in the backup worker process; the bytes written."""
        try:
            result = await run_worker(job, self._progress(msg, delivery))
        except WorkerError as exc:
            raise BackupError(str(exc)) from None
        log.info("restore worker ended", restore_id=msg.restore_id, peak_rss_mb=round(result.peak_rss_kb / 1024, 1))
        if result.reason is not None:
            raise BackupError(result.reason)
        return result.size

    async def _feed(
        self, msg: RestoreBackup, delivery: Delivery, chunks: AsyncIterator[bytes], ex: ExecStream | HelperContainer
    ) -> int:
        """Stream the object's ``chunks`` into the tool's stdin (its SHA-256 checked on the way); the bytes
        written. Good when the SHA-256 matched and the tool exited 0."""
        key = msg.encryption.reveal() if msg.encryption is not None else None
        codec = dom.restore_packing(msg.compression, msg.key, key).unpacker()
        written, _, reason = await feed(chunks, codec, ex, msg.sha256, self._progress(msg, delivery))
        if reason is not None:
            raise BackupError(reason)
        return written

    def _progress(self, msg: RestoreBackup, delivery: Delivery) -> Callable[[int], Awaitable[None]]:
        async def progress(written: int) -> None:
            await self._log(msg.restore_id, f"{written >> 20} MB restored")
            with contextlib.suppress(Exception):
                await delivery.in_progress()

        return progress


async def _keep_in_progress(delivery: Delivery) -> None:
    while True:
        await asyncio.sleep(BEAT_S)
        with contextlib.suppress(Exception):
            await delivery.in_progress()
