"""A database's dump or a volume's tar streamed by the backup worker process (``usecases.backup_worker``), the scheduler
keeping the rest: the destinations are opened here first (the multipart upload created and recorded, the
directory's ``.partial`` file made, so a sweep can remove them if this process dies), the worker streams
the exec output into them, then the objects are completed, listed back and checked here.

Used when the engine is on a unix socket the worker can open (a remote server's is forwarded over the
scheduler's SSH connection) and every destination is S3, a directory on the control plane's server, or a
directory on another server whose SSH target the scheduler can give the worker (``worker_fits``): the
scheduler makes the ``.partial`` file there and hands it over, the worker writes it over SFTP on its own
connection (``adapters.sftp_files``), the scheduler renames it and reads its size back. Otherwise (the
worker is turned off, no socket) the dump streams in the scheduler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from berth_common.catalogue import BackupObject, DirectoryDestination, S3Destination, StartBackup, VolumeSource
from berth_common.docker import LOCAL
from berth_common.docker.engine import API_VERSION
from berth_common.logging import get_logger
from berth_scheduler.adapters.backup_process import WorkerError, run_worker
from berth_scheduler.adapters.backup_sinks import DirectorySink, RemoteDirectorySink, S3Sink, Sink
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.helper_container import created
from berth_scheduler.domain.backup_jobs import DumpJob, S3Upload, SftpFile
from berth_scheduler.domain.dumps import Exec

if TYPE_CHECKING:
    from berth_common.ssh import SshTarget

log = get_logger(__name__)
Target = Callable[[str], Awaitable["SshTarget"]]  # a server's SSH target, its key opened (``Fleet.target``)


class OffloadError(RuntimeError):
    """Why the worker's stream is not good: the tool's or the store's reason, or how the worker ended."""


def worker_fits(destinations: Sequence[S3Destination | DirectoryDestination], *, remote: bool) -> bool:
    """Whether the worker can write every destination (``remote``: it can be given other servers' targets)."""
    return all(isinstance(d, S3Destination) or d.server_id == LOCAL or remote for d in destinations)


def sftp_file(target: SshTarget, path: str) -> SftpFile:
    """The file ``path`` on the server of ``target``, as the worker's job names it."""
    return SftpFile(target.host, target.port, target.user, target.private_key, target.host_key or "", path)


async def remote_files(sinks: Sequence[Sink], target: Target | None) -> list[SftpFile]:
    """The ``.partial`` files of the sinks on other servers, handed over to the worker (in their order)."""
    files = []
    for sink in sinks:
        if isinstance(sink, RemoteDirectorySink):
            assert target is not None
            await sink.hand_over()
            files.append(sftp_file(await target(sink.server_id), sink.partial))
    return files


class Limits(Protocol):
    @property
    def part_size(self) -> int: ...
    @property
    def s3_timeout_s(self) -> float: ...


def job_of(
    socket: str,
    msg: StartBackup,
    command: Exec,
    compression: str,
    sinks: Sequence[Sink],
    limits: Limits,
    helper: str | None = None,
    remote: Sequence[SftpFile] = (),
) -> DumpJob:
    """The worker's job for the backup ``msg``, its ``sinks`` opened (in its destinations' order): an exec
    of ``command`` in the database's container, or the created ``helper`` container's output; ``remote``:
    the sinks' files on other servers (``remote_files``)."""
    uploads, files = [], []
    for dest, sink in zip(msg.destinations, sinks, strict=True):
        if isinstance(dest, S3Destination) and isinstance(sink, S3Sink):
            assert sink.upload_id is not None
            secret = dest.reveal()
            upload = S3Upload(
                dest.endpoint,
                dest.bucket,
                dest.region,
                dest.path_style,
                dest.access_key,
                secret,
                outbound_allow=dest.outbound_allow,
                outbound_private=dest.outbound_private,
            )
            uploads.append(replace(upload, key=sink.key, upload_id=sink.upload_id))
        elif isinstance(sink, DirectorySink):
            files.append(str(sink.partial))
    container = helper or ("" if isinstance(msg.source, VolumeSource) else msg.source.container)
    return DumpJob(
        socket,
        API_VERSION,
        container,
        list(command.argv),
        dict(command.env),
        command.stdin,
        compression,
        limits.part_size,
        limits.s3_timeout_s,
        uploads,
        files,
        attach=helper is not None,
        key=msg.encryption.reveal() if msg.encryption is not None else "",
        remote=list(remote),
    )


async def dump_in_worker(job: DumpJob, sinks: Sequence[Sink], backup_id: str) -> list[BackupObject]:
    """Run ``job``; complete and verify every sink. Raises :class:`OffloadError` when it is not good (the
    caller aborts the sinks)."""
    try:
        result = await run_worker(job)
    except WorkerError as exc:
        raise OffloadError(str(exc)) from None
    log.info("backup worker ended", backup_id=backup_id, peak_rss_mb=round(result.peak_rss_kb / 1024, 1))
    if result.reason is not None:
        raise OffloadError(result.reason)
    s3 = [s for s in sinks if isinstance(s, S3Sink)]
    for index, upload in enumerate(s3):
        upload.adopt(result.upload_parts(index))
    for sink in sinks:
        await sink.finish()
    for sink in sinks:
        await sink.verify(result.size)
    return [BackupObject(destination=s.name, key=s.key, size=result.size, sha256=result.sha256) for s in sinks]


async def helper_in_worker(
    docker: DockerExecutor,
    socket: str,
    msg: StartBackup,
    helper: tuple[str, dict[str, Any]],
    compression: str,
    sinks: Sequence[Sink],
    limits: Limits,
    target: Target | None = None,
) -> list[BackupObject]:
    """A helper container's output (a volume's tar) streamed by the worker: the helper ``(name, body)`` is
    created here, attached and started by the worker, and removed here whatever happened."""
    name, body = helper
    remote = await remote_files(sinks, target)
    async with created(docker, name, body):
        job = job_of(socket, msg, Exec([str(a) for a in body["Cmd"]]), compression, sinks, limits, name, remote)
        return await dump_in_worker(job, sinks, msg.backup_id)
