"""Upkeep of stored backups, for ``usecases.backups`` (``cmd.backup.start``): retention after a verified
backup, and the removal of what an interrupted backup uploaded.

Retention records the new backup's verified copies, then, per destination, deletes what
``domain.backups.to_prune`` says among the recorded verified copies of the same database (never the newest,
never an object Berth did not record); a deletion the store refuses is tried again after the next backup.
"""

from __future__ import annotations

import contextlib
from typing import Any

from berth_common.catalogue import BackupObject, S3Destination, StartBackup
from berth_common.db import Transactions, Unit
from berth_common.logging import get_logger
from berth_common.redaction import mask
from berth_scheduler.adapters import backup_store as store
from berth_scheduler.adapters.backup_sinks import SinkError, Ssh, delete_object, s3_client
from berth_scheduler.domain import backups as dom

log = get_logger(__name__)
MAX_REASON = 3900


def masked(text: str, secrets: list[str]) -> str:
    """``text`` without any of ``secrets`` (a reason or a log line that might quote one), bounded: the shared
    rule (``berth_common.redaction.mask``)."""
    return mask(text, secrets)[:MAX_REASON]


async def apply_retention(
    transactions: Transactions,
    msg: StartBackup,
    objects: list[BackupObject],
    now: float,
    secrets: list[str],
    ssh: Ssh | None = None,
) -> int:
    """Record the verified copies, then apply the command's retention per destination; how many deleted."""
    rows = [
        {**o.model_dump(), "backup_id": msg.backup_id, "database_id": msg.database_id, "created_at": now}
        for o in objects
    ]

    async def record(unit: Unit) -> None:
        await store.record_objects(unit.session, rows)

    await transactions.run(record)
    pruned = 0
    for dest in msg.destinations:
        async with transactions.sessionmaker() as session:
            stored = await store.kept_objects(session, msg.database_id, dest.name)
        deleted = []
        for key in dom.to_prune(stored, msg.retention.keep_count, msg.retention.keep_days, now):
            try:
                await delete_object(dest, key, ssh)
                deleted.append(key)
            except (SinkError, OSError) as exc:
                log.warning("retention could not delete", key=key, error=masked(str(exc), secrets))

        async def mark(unit: Unit, name: str = dest.name, keys: list[str] = deleted) -> None:
            await store.mark_pruned(unit.session, name, keys, now)

        await transactions.run(mark)
        pruned += len(deleted)
    return pruned


async def remove_uploads(
    command: dict[str, Any], uploads: list[Any], s3_timeout_s: float, ssh: Ssh | None = None
) -> None:
    """Abort the multipart uploads and delete the objects or files an interrupted backup made (best effort:
    a store that does not answer keeps parts its lifecycle rules remove; nothing of it is listed as good)."""
    try:
        msg = StartBackup.model_validate(command)
    except Exception as exc:
        log.warning("an interrupted backup's command cannot be read", error=type(exc).__name__)
        return
    for index, key, upload_id in uploads:
        if not isinstance(index, int):  # a container stopped for consistency (``usecases.volume_dumps``)
            continue
        dest = msg.destinations[index]
        with contextlib.suppress(Exception):
            if isinstance(dest, S3Destination):
                client = s3_client(dest, s3_timeout_s)
                try:
                    if upload_id:
                        await client.abort_multipart(key, upload_id)
                    await client.delete(key)
                finally:
                    await client.close()
            else:
                await delete_object(dest, f"{key}.partial", ssh)
                await delete_object(dest, key, ssh)
