"""Database and volume backups: carries out ``cmd.backup.start`` and answers with ``evt.backup.started``, then
``evt.backup.succeeded`` or ``evt.backup.failed`` (for the notifier).

The dump runs in the database's container through the engine's exec (the server's engine through the
connection factory, a remote server's over SSH); its stdout is compressed and hashed (SHA-256) on the fly
and streamed to every destination in bounded parts, in a worker process (``usecases.backup_offload``). It
is good only when the dump tool exited 0 and every destination lists the object back with the size
uploaded; any other end aborts every upload (no half object is listed), records the reason the tool or the
store gave, and deletes nothing. Retention (``domain.backups.to_prune``) runs per destination after a
verified backup only. A volume's dump is a tar stream of a helper container (``usecases.volume_dumps``),
what it names stopped meanwhile; the destinations are opened once they are stopped, the rest is the same.

A backup is claimed (row ``running``, ``evt.backup.started``) in a first transaction; the outcome, the
command's message id and the event are written in a second. While it runs the process beats
(``heartbeat_at``, and the bus message is kept in progress); a backup whose process stopped beating (killed,
crashed) is ended ``failed`` by the sweep of any scheduler, its uploads aborted, and announced: never left
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from berth_common import sealing
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import (
    BackupFailed,
    BackupObject,
    BackupStarted,
    BackupSucceeded,
    DirectoryDestination,
    S3Destination,
    StartBackup,
    VolumeSource,
)
from berth_common.db import Transactions, Unit
from berth_common.docker import LOCAL, DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import backup_store as store
from berth_scheduler.adapters.backup_sinks import S3Sink, Sink, SinkError, Ssh, directory_sink
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.exec_stream import ExecStream
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.adapters.helper_container import HelperContainer
from berth_scheduler.domain import backups as dom
from berth_scheduler.domain import dumps
from berth_scheduler.domain import volume_dumps as vol
from berth_scheduler.domain.backups import BackupError as BackupError
from berth_scheduler.usecases import backup_offload as offload
from berth_scheduler.usecases import volume_dumps
from berth_scheduler.usecases.backup_stream import pump
from berth_scheduler.usecases.backup_upkeep import apply_retention, masked, remove_uploads
from berth_scheduler.usecases.periodic import Periodic
from berth_scheduler.usecases.redis_snapshot import redis_bgsave

log = get_logger(__name__)


@dataclass(frozen=True)
class BackupSettings:
    part_size: int = 8 << 20
    heartbeat_s: float = 10.0
    stale_s: float = 60.0
    timeout_s: float = 6 * 3600.0
    s3_timeout_s: float = 30.0
    in_worker: bool = True  # a database's dump streams in a worker process (``usecases.backup_offload``)
    limits: BackgroundLimits = DEFAULT_LIMITS  # of the helper container that reads a volume


@dataclass
class Outcome:
    compression: str
    objects: list[BackupObject] = field(default_factory=list)
    reason: str | None = None
    pruned: int = 0


def _packing(msg: StartBackup, compression: str) -> dom.Packing:
    """The command's compression, and its team key opened (in memory only) when it asks for encryption."""
    return dom.packing(compression, msg.encryption.reveal() if msg.encryption is not None else None)


def _secrets(msg: StartBackup) -> list[str]:
    out = []
    sources = [] if isinstance(msg.source, VolumeSource) else [msg.source]
    for item in (*sources, *[d for d in msg.destinations if isinstance(d, S3Destination)]):
        with contextlib.suppress(sealing.SealingError):
            out.append(item.reveal())
    return out


@dataclass
class Backups:
    transactions: Transactions
    docker: Callable[[str], Awaitable[DockerExecutor]]  # a server's executor (``Fleet.docker``)
    settings: BackupSettings = field(default_factory=BackupSettings)
    ssh: Ssh | None = None  # a server's SSH connection, for a directory on a remote server (``Fleet.connection``)
    socket: volume_dumps.Socket | None = None  # a server's engine socket, to deliver the helper image
    target: offload.Target | None = None  # a server's SSH target: the worker writes a directory there
    clock: Callable[[], float] = time.time
    worker: str = field(default_factory=lambda: uuid.uuid4().hex)
    _sweeper: Periodic | None = field(default=None, init=False)
    _cleanups: list[tuple[dict[str, Any], list[Any]]] = field(default_factory=list, init=False)

    # --- the command ---------------------------------------------------------------------------

    async def start(self, msg: StartBackup, delivery: Delivery) -> None:
        # the command as received (its secrets sealed as they came): kept to end it if this process stops
        command = dict(delivery.envelope.data)
        claimed = await self.transactions.run(lambda unit: self._claim(unit, msg, command))
        if not claimed:
            # seen before: finished, ended by the sweep, or running in a live process (whose last
            # transaction records this message id with the outcome): nothing more to do here
            return
        beat = asyncio.create_task(self._beat(msg.backup_id, delivery))
        try:
            outcome = await self._run(msg)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self.transactions.run(lambda unit: self._finish(unit, msg, outcome), delivery=delivery)

    async def _claim(self, unit: Unit, msg: StartBackup, command: dict[str, Any]) -> bool:
        row = await store.lock_backup(unit.session, msg.backup_id)
        now = self.clock()
        if row is not None:
            if row["state"] == "running" and row["heartbeat_at"] < now - self.settings.stale_s:
                await self._interrupted(unit, row)
            return False
        await store.insert_backup(
            unit.session,
            id=msg.backup_id,
            team_id=msg.team_id,
            database_id=msg.database_id,
            engine=msg.source.engine,
            database=msg.source.database,
            state="running",
            command=command,
            compression=dom.compression_used(msg.compression),
            uploads=[],
            worker=self.worker,
            heartbeat_at=now,
            started_at=now,
        )
        started = BackupStarted(
            backup_id=msg.backup_id,
            team_id=msg.team_id,
            database_id=msg.database_id,
            engine=msg.source.engine,
            database=msg.source.database,
        )
        await unit.emit(started, id=f"backup-started-{msg.backup_id}")
        log.info("backup started", backup_id=msg.backup_id, engine=msg.source.engine, database=msg.source.database)
        return True

    async def _beat(self, backup_id: str, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            with contextlib.suppress(Exception):
                await delivery.in_progress()

            async def beat(unit: Unit) -> None:
                await store.update_backup(unit.session, backup_id, heartbeat_at=self.clock())

            try:
                await self.transactions.run(beat)
            except Exception as exc:  # the database is away for a moment: the next beat tries again
                log.warning("backup heartbeat not recorded", backup_id=backup_id, error=str(exc))

    async def _finish(self, unit: Unit, msg: StartBackup, outcome: Outcome) -> None:
        now = self.clock()
        ids = {"backup_id": msg.backup_id, "team_id": msg.team_id, "database_id": msg.database_id}
        common = {**ids, "engine": msg.source.engine}
        database = msg.source.database
        row = await store.lock_backup(unit.session, msg.backup_id)
        if row is None or row["state"] != "running":
            return  # ended by the sweep meanwhile (this process stopped beating): announced there
        if outcome.reason is not None:
            await store.update_backup(
                unit.session, msg.backup_id, state="failed", reason=outcome.reason, finished_at=now
            )
            await unit.emit(
                BackupFailed(**common, database=database, reason=outcome.reason), id=f"backup-ended-{msg.backup_id}"
            )
            log.warning("backup failed", backup_id=msg.backup_id, reason=outcome.reason)
            return
        await store.update_backup(unit.session, msg.backup_id, state="succeeded", uploads=[], finished_at=now)
        succeeded = BackupSucceeded(
            **common,
            database=database,
            compression=outcome.compression,  # type: ignore[arg-type]
            objects=outcome.objects,
            duration_s=max(0.0, now - row["started_at"]),
            pruned=outcome.pruned,
            encrypted=msg.encryption is not None,
            key_id=msg.encryption.key_id if msg.encryption is not None else None,
        )
        await unit.emit(succeeded, id=f"backup-ended-{msg.backup_id}")
        log.info("backup verified", backup_id=msg.backup_id, objects=len(outcome.objects), pruned=outcome.pruned)

    # --- the dump ------------------------------------------------------------------------------

    async def _run(self, msg: StartBackup) -> Outcome:
        compression = dom.compression_used(msg.compression)
        outcome = Outcome(compression)
        sinks: list[Sink] = []
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                outcome.objects = await self._dump(msg, compression, sinks)
        except TimeoutError:
            outcome.reason = f"the backup did not finish within {self.settings.timeout_s:g} s"
        except (BackupError, SinkError, DockerOperationError, DockerUnavailable, ServerRefusedError) as exc:
            outcome.reason = str(exc)
        except (volume_dumps.VolumeError, offload.OffloadError) as exc:
            outcome.reason = str(exc)
        except sealing.SealingError:
            outcome.reason = "a sealed password or secret key of the command cannot be opened (BERTH_SECRET_KEY)"
        except Exception as exc:  # a bug must still end the backup failed, never running
            log.exception("backup broke", backup_id=msg.backup_id)
            outcome.reason = f"internal error: {type(exc).__name__}"
        finally:
            if outcome.reason is not None or not outcome.objects:
                for sink in sinks:
                    with contextlib.suppress(Exception):
                        await sink.abort()
            for sink in sinks:
                with contextlib.suppress(Exception):
                    await sink.close()
        if outcome.reason is not None:
            outcome.reason = masked(outcome.reason, _secrets(msg))
            outcome.objects = []
            return outcome
        try:
            outcome.pruned = await apply_retention(
                self.transactions, msg, outcome.objects, self.clock(), _secrets(msg), self.ssh
            )
        except Exception as exc:  # the backup is good all the same; retention tries again after the next one
            log.warning("retention not applied", backup_id=msg.backup_id, error=masked(str(exc), _secrets(msg)))
        return outcome

    async def _dump(self, msg: StartBackup, compression: str, sinks: list[Sink]) -> list[BackupObject]:
        src = msg.source
        docker = await self.docker(src.server_id)
        started = self.clock()

        def name(extension: str) -> str:
            encrypted = msg.encryption is not None
            return dumps.object_name(
                msg.database_id, dom.stamp(started), msg.backup_id, extension, compression, encrypted
            )

        if isinstance(src, VolumeSource):
            await volume_dumps.helper_image(docker, src.server_id, self.socket, await self.docker(LOCAL))

            async def note(container: str) -> None:
                await self._note_upload(msg.backup_id, [vol.STOPPED_ENTRY, container, None])

            async with volume_dumps.stopped(docker, src, msg.team_id, note):
                await volume_dumps.check_source(docker, src, msg.team_id)
                await self._open(msg, name(vol.EXTENSION), sinks)
                helper, body = vol.helper_name("backup", msg.backup_id), vol.dump_body(src.volume, self.settings.limits)
                if (where := await self._worker_socket(msg)) is not None:
                    return await offload.helper_in_worker(
                        docker, where, msg, (helper, body), compression, sinks, self.settings, self.target
                    )
                async with HelperContainer(docker, helper, body) as running:
                    return await self._pump(running, _packing(msg, compression), sinks)
        password = src.reveal()
        rdb = await redis_bgsave(docker, src.container, password) if src.engine == "redis" else ""
        plan = dumps.dump_plan(src.engine, src.database, src.user, password, rdb_path=rdb or "/data/dump.rdb")
        await self._open(msg, name(plan.extension), sinks)
        if (where := await self._worker_socket(msg)) is not None:
            remote = await offload.remote_files(sinks, self.target)
            job = offload.job_of(where, msg, plan.stream, compression, sinks, self.settings, remote=remote)
            return await offload.dump_in_worker(job, sinks, msg.backup_id)
        async with ExecStream(docker, src.container, plan.stream) as ex:
            return await self._pump(ex, _packing(msg, compression), sinks)

    async def _worker_socket(self, msg: StartBackup) -> str | None:
        """The engine's socket for the backup worker process; None: the stream runs in this process."""
        fits = offload.worker_fits(msg.destinations, remote=self.target is not None)
        if not (self.settings.in_worker and self.socket is not None and fits):
            return None
        return await self.socket(msg.source.server_id)

    async def _open(self, msg: StartBackup, name: str, sinks: list[Sink]) -> None:
        for index, dest in enumerate(msg.destinations):
            sink = await self._sink(msg.backup_id, index, dest, name)
            sinks.append(sink)
            await sink.open()

    async def _pump(
        self, ex: ExecStream | HelperContainer, packing: dom.Packing, sinks: list[Sink]
    ) -> list[BackupObject]:
        """Compress (then encrypt), hash and write the dump's stdout to every sink; good when the tool exited 0
        and every destination lists the object back with its size."""
        codec = packing.packer()
        written = await pump(ex.chunks(), codec, [sink.write for sink in sinks])
        sha, size = written.sha256, written.size
        code = await ex.exit_code()
        if code != 0:
            raise BackupError(dom.exit_reason(ex.tool, code, ex.error_text()))
        tail = codec.end()
        sha.update(tail)
        size += len(tail)
        for sink in sinks:
            await sink.write(tail)
        for sink in sinks:
            await sink.finish()
        for sink in sinks:
            await sink.verify(size)
        digest = sha.hexdigest()
        return [BackupObject(destination=s.name, key=s.key, size=size, sha256=digest) for s in sinks]

    async def _sink(self, backup_id: str, index: int, dest: S3Destination | DirectoryDestination, name: str) -> Sink:
        """The destination's sink; where it writes is recorded first, so a sweep can remove it."""
        if isinstance(dest, DirectoryDestination):
            sink = directory_sink(dest, name, self.ssh)
            await self._note_upload(backup_id, [index, sink.key, None])
            return sink
        key = f"{dest.prefix}{name}"

        async def on_upload(upload_id: str) -> None:
            await self._note_upload(backup_id, [index, key, upload_id])

        return S3Sink(
            dest, name, part_size=self.settings.part_size, on_upload=on_upload, timeout_s=self.settings.s3_timeout_s
        )

    async def _note_upload(self, backup_id: str, entry: list[Any]) -> None:
        async def body(unit: Unit) -> None:
            await store.add_upload(unit.session, backup_id, entry)

        await self.transactions.run(body)

    # --- interrupted backups ---------------------------------------------------------------------

    async def _interrupted(self, unit: Unit, row: dict[str, Any]) -> None:
        """End a backup whose process stopped: failed, announced; its uploads are removed after the commit."""
        await store.update_backup(
            unit.session, row["id"], state="failed", reason=dom.INTERRUPTED, finished_at=self.clock()
        )
        failed = BackupFailed(
            backup_id=row["id"],
            team_id=row["team_id"],
            database_id=row["database_id"],
            engine=row["engine"],
            database=row["database"],
            reason=dom.INTERRUPTED,
        )
        await unit.emit(failed, id=f"backup-ended-{row['id']}")
        log.warning("backup interrupted", backup_id=row["id"])
        self._cleanups.append((row["command"], list(row["uploads"])))

    async def sweep(self) -> int:
        """End every backup whose process stopped beating; abort and remove what it uploaded."""

        async def body(unit: Unit) -> int:
            ids = await store.stale_backups(unit.session, self.clock() - self.settings.stale_s)
            for backup_id in ids:
                row = await store.lock_backup(unit.session, backup_id)
                if row is not None:
                    await self._interrupted(unit, row)
            return len(ids)

        count: int = await self.transactions.run(body)
        await self._clean_up()
        return count

    async def _clean_up(self) -> None:
        while self._cleanups:
            command, uploads = self._cleanups.pop()
            await remove_uploads(command, uploads, self.settings.s3_timeout_s, self.ssh)
            await volume_dumps.resume(self.docker, command, uploads)

    def start_sweeper(self, interval_s: float) -> None:
        self._sweeper = Periodic("backup sweep", self.sweep)
        self._sweeper.start(interval_s)

    async def stop(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()
