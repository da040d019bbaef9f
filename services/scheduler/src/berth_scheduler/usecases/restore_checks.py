"""What a restore runs in the backup worker process: its stream (``restore_job``), and the first pass of
a restore that writes over existing data: the stored object is read to its end and its SHA-256 compared
with the one the backup recorded, before anything is written into the target. A wrong object is refused
with the reason; the target is untouched.

Both run in the worker (``RestoreJob``, ``CheckJob``), so the scheduler's memory does not follow the
object's size: an object in S3, in a directory on the control plane's server, or in a directory on another
server (read over SFTP on the worker's own SSH connection, the server's target given in the job). Only
without a way to give the worker that target (``target`` None) is a remote object read in the scheduler.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from berth_common.catalogue import RestoreBackup, S3Destination
from berth_common.docker import LOCAL
from berth_common.docker.engine import API_VERSION
from berth_scheduler.adapters.backup_process import WorkerError, run_worker
from berth_scheduler.adapters.backup_sinks import SinkError, Ssh, inside, read_object
from berth_scheduler.domain import backups as dom
from berth_scheduler.domain.backup_jobs import CheckJob, RestoreJob, S3Upload, SftpFile
from berth_scheduler.domain.dumps import Exec
from berth_scheduler.domain.restore_checks import mismatch
from berth_scheduler.usecases.backup_offload import Target, sftp_file
from berth_scheduler.usecases.backups import BackupError


def in_worker(msg: RestoreBackup, *, remote: bool) -> bool:
    """True when the worker process can read the stored object: in S3, on the control plane's disk, or on
    another server when the worker can be given its target (``remote``)."""
    return isinstance(msg.origin, S3Destination) or msg.origin.server_id == LOCAL or remote


async def remote_of(msg: RestoreBackup, target: Target | None) -> SftpFile | None:
    """The stored object as the worker reads it on another server; None when it is not on one."""
    origin = msg.origin
    if isinstance(origin, S3Destination) or origin.server_id == LOCAL:
        return None
    assert target is not None
    return sftp_file(await target(origin.server_id), str(inside(msg.key, origin.path)))


def _where(msg: RestoreBackup) -> tuple[S3Upload | None, str]:
    origin = msg.origin
    if isinstance(origin, S3Destination):
        secret = origin.reveal()
        upload = S3Upload(
            origin.endpoint,
            origin.bucket,
            origin.region,
            origin.path_style,
            origin.access_key,
            secret,
            outbound_allow=origin.outbound_allow,
            outbound_private=origin.outbound_private,
        )
        return replace(upload, key=msg.key), ""
    return None, str(inside(msg.key, origin.path))


def restore_job(
    msg: RestoreBackup, socket: str, container: str, command: Exec, *, attach: bool, remote: SftpFile | None = None
) -> RestoreJob:
    """The worker's job streaming the object of ``msg`` (``remote``: on another server) into ``command`` in
    ``container``."""
    source, file = _where(msg)
    key = msg.encryption.reveal() if msg.encryption is not None else None
    packing = dom.restore_packing(msg.compression, msg.key, key)  # refuses an encrypted object without a key
    return RestoreJob(
        socket,
        API_VERSION,
        container,
        list(command.argv),
        msg.sha256,
        dict(command.env),
        msg.compression,
        source,
        file,
        attach=attach,
        key=key if packing.encrypted and key else "",
        remote=remote,
    )


async def object_digest(msg: RestoreBackup, ssh: Ssh | None, target: Target | None = None) -> tuple[str, int]:
    """The stored object's SHA-256 and size, read to its end."""
    if in_worker(msg, remote=target is not None):
        try:
            result = await run_worker(CheckJob(*_where(msg), remote=await remote_of(msg, target)))
        except WorkerError as exc:
            raise BackupError(str(exc)) from None
        if result.reason is not None:
            raise BackupError(f"the backup object cannot be read: {result.reason}")
        return result.sha256, result.size
    sha, size = hashlib.sha256(), 0
    async with read_object(msg.origin, msg.key, ssh) as chunks:
        async for data in chunks:
            sha.update(data)
            size += len(data)
    return sha.hexdigest(), size


async def check_before_writing(msg: RestoreBackup, ssh: Ssh | None, into: str, target: Target | None = None) -> None:
    """Refuse (``BackupError``) unless the stored object is the one the backup recorded."""
    try:
        sha, size = await object_digest(msg, ssh, target)
    except SinkError as exc:
        raise BackupError(f"the backup object cannot be read: {exc}") from None
    reason = mismatch(sha, size, msg.sha256, None, into)
    if reason is not None:
        raise BackupError(reason)
