"""Restoring a database's backup: into a new database (the default: a database record of the same engine the
api creates, named in the request) or over the existing one (only with an explicit confirmation, and only
after a fresh backup of its current data succeeded).

The restore's row is written first and its ``cmd.backup.restore`` is sent when what it waits for is there:
at once, or when the new database reports ``running`` (``waiting``), or when the fresh backup succeeded
(``backing_up``; its failure fails the restore and leaves the data as it was). The scheduler's
``evt.restore.succeeded`` and ``evt.restore.failed`` set the outcome; its progress is the log
``log.<restore_id>``, read like a deployment's.
The new database is empty when the restore runs, so the restore writes over it (``overwrite``). A volume's
restore (its row names the target volume, ``target_source``; ``usecases.volume_backups``) is sent the same
way: at once into a new volume, or over the existing one once its fresh backup succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import backups as repo
from berth_api.adapters import databases as db_repo
from berth_api.adapters.logstream import LogReader, last_sequence
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps, backup_keys, backup_records, backups, connection_urls, databases
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.deployments import run
from berth_common import streamcrypt
from berth_common.catalogue import (
    BackupFailed,
    BackupKey,
    BackupSource,
    BackupSucceeded,
    DatabaseChanged,
    RestoreBackup,
    RestoreFailed,
    RestoreSucceeded,
    VolumeSource,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
LOG_WAIT_S = 2.0
MAX_LOG_LINES = 2000


@dataclass(frozen=True)
class RestoreInput:
    backup_id: str
    destination: str | None = None
    target: str = "new"
    name: str | None = None
    confirm: bool = False


def restore_missing(principal: Principal, restore_id: str) -> ProblemError:
    return not_in_team("restore", restore_id, principal.team_name)


async def start(deps: Deps, principal: Principal, database_id: str, given: RestoreInput) -> dict[str, Any]:
    if given.target == "existing" and not given.confirm:
        raise invalid_field("/body/confirm", "restoring over the existing database needs confirm: true")
    if given.target == "new" and not given.name:
        raise invalid_field("/body/name", "restoring into a new database needs its name")
    async with deps.sessionmaker() as s:
        source = await db_repo.get_database(s, principal.team_id, database_id)
        backup = await repo.get_backup(s, principal.team_id, given.backup_id)
        if source is None:
            raise connection_urls.database_missing(principal, database_id)
        if backup is None or backup["database_id"] != database_id:
            raise invalid_field("/body/backup_id", f"no backup {given.backup_id} of database {database_id}")
        if backup["state"] != "succeeded":
            raise ProblemError(409, f"The backup is {backup['state']}; only a verified (succeeded) backup restores.")
        existing = {r["id"] for r in await repo.list_destinations(s, principal.team_id)}
    origin_id, obj = backup_records.object_of(backup, given.destination, existing)
    target_id = database_id
    if given.target == "new":
        assert given.name is not None
        made = databases.DatabaseInput(given.name, source["engine"], source["version"], source["server_id"])
        target_id = (await databases.create(deps, principal, made))["id"]
    restore_id = new_id()

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        target = await db_repo.get_database(s, principal.team_id, target_id, sealed=True, lock=True)
        if target is None:
            raise connection_urls.database_missing(principal, target_id)
        values = {
            "id": restore_id,
            "team_id": principal.team_id,
            "database_id": database_id,
            "backup_id": backup["id"],
            "target_database_id": target_id,
            "target": given.target,
            "state": "waiting",
            "origin_id": origin_id,
            "key": obj["key"],
            "sha256": obj["sha256"],
            "compression": backup["compression"] or "gzip",
            "source_database": backup["database"],
            "requested_by": principal.user_id,
        }
        if given.target == "existing":
            dests = await destinations.resolve(
                deps, s, principal, sorted(existing & {d["id"] for d in backup["destinations"]}), "/body/backup_id"
            )
            # the backup taken first is encrypted as the one restored was (and as its destinations ask)
            encrypted = obj["key"].endswith(streamcrypt.SUFFIX)
            given_first = backups.BackupInput([], backup["compression"] or "gzip", encrypt=encrypted)
            fresh = await backups.stage_backup(deps, unit, principal, target, dests, given_first)
            values.update(state="backing_up", pre_backup_id=fresh["id"])
            return await repo.insert_restore(s, values)
        row = await repo.insert_restore(s, values)
        if target["state"] == "running":
            return await send(deps, unit, row)
        return row

    row = await run(deps, body)
    log.info("restore requested", restore_id=restore_id, backup_id=backup["id"], target=given.target)
    return row


async def send(deps: Deps, unit: Unit, row: dict[str, Any]) -> dict[str, Any]:
    """Stage the restore's command (its target and origin read now) and mark it running."""
    s = unit.session
    origin = await repo.get_destination(s, row["team_id"], row["origin_id"], sealed=True)
    target: BackupSource | VolumeSource | None
    if row.get("target_source"):  # a volume's: as the request named it (a new volume unless ``existing``)
        target, overwrite = VolumeSource.model_validate(row["target_source"]), row["target"] == "existing"
    else:  # a database's: the new one is empty when the restore runs, so it is written over
        database = await db_repo.get_database(s, row["team_id"], row["target_database_id"], sealed=True)
        target, overwrite = None if database is None else backups.source_of(deps, database), True
    if target is None or origin is None:
        what = "target database" if target is None else "backup destination"
        return await _fail(s, row, f"the {what} was deleted before the restore could start")
    await hold_for_sealing(s, deps.box)
    command = RestoreBackup(
        restore_id=row["id"],
        backup_id=row["backup_id"],
        team_id=row["team_id"],
        database_id=row["database_id"],
        origin=destinations.wire_destination(deps, origin),
        key=row["key"],
        sha256=row["sha256"],
        compression=row["compression"],
        target=target,
        source_database=row["source_database"],
        overwrite=overwrite,
        confirm_overwrite=overwrite,
        encryption=await _key_for(deps, unit, row),
    )
    await unit.emit(command, id=f"backup-restore-{row['id']}")
    return await repo.update_restore(s, row["id"], {"state": "running"})


async def _key_for(deps: Deps, unit: Unit, row: dict[str, Any]) -> BackupKey | None:
    """The team's key when the stored object is encrypted (its name ends with ``.enc``)."""
    if not row["key"].endswith(streamcrypt.SUFFIX):
        return None
    return await backup_keys.team_key(deps, unit.session, row["team_id"])


async def _fail(session: Any, row: dict[str, Any], reason: str) -> dict[str, Any]:
    values = {"state": "failed", "reason": reason, "finished_at": datetime.now(UTC)}
    return await repo.update_restore(session, row["id"], values)


async def get(deps: Deps, principal: Principal, restore_id: str) -> dict[str, Any]:
    """The restore with the lines of its log so far (empty when the bus cannot be asked)."""
    async with deps.sessionmaker() as s:
        row = await repo.get_restore(s, principal.team_id, restore_id)
    if row is None:
        raise restore_missing(principal, restore_id)
    return {**row, "log": await _lines(deps, restore_id)}


async def list_for(
    deps: Deps, principal: Principal, database_id: str, limit: int, before: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The restores of one of the team's databases, newest first, a page of ``limit`` after the restore
    ``before`` (the last of the previous page), and the ``before`` of the next page (None on the last:
    one row more is read to know); 404 when the team has no such database, 422 when ``before`` is not one
    of its restores. Without their logs: a restore's own page reads its log."""
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise connection_urls.database_missing(principal, database_id)
        last = None
        if before is not None:
            last = await repo.get_restore(s, principal.team_id, before)
            if last is None or last["database_id"] != database_id or last["application_id"] is not None:
                raise invalid_field("/query/before", f"no restore {before} of database {database_id}")
        rows = await repo.restores_of(s, principal.team_id, database_id, limit + 1, last)
    return rows[:limit], (rows[limit - 1]["id"] if len(rows) > limit else None)


async def _lines(deps: Deps, restore_id: str) -> list[dict[str, Any]]:
    try:
        if not deps.bus.connected:
            return []
        last = await last_sequence(deps.bus.js, restore_id)
        lines: list[dict[str, Any]] = []
        if last == 0:
            return lines
        async with LogReader(deps.bus.js, restore_id) as reader:
            while len(lines) < MAX_LOG_LINES:
                entry = await reader.next(LOG_WAIT_S)
                if entry is None:
                    break
                lines.append({"seq": entry.line.seq, "stream": entry.line.stream, "line": entry.line.line})
                if entry.sequence >= last:
                    break
        return lines
    except Exception as exc:
        log.warning("restore log unavailable", restore_id=restore_id, error=type(exc).__name__)
        return []


# --- answers ------------------------------------------------------------------------------------------


async def on_backup_succeeded(deps: Deps, msg: BackupSucceeded, unit: Unit) -> None:
    """The backup's projection, then the restores that waited for it as their fresh backup."""
    await backup_records.on_succeeded(msg, unit)
    for row in await repo.restores_waiting(unit.session, "pre_backup_id", msg.backup_id, "backing_up"):
        await send(deps, unit, row)


async def on_backup_failed(msg: BackupFailed, unit: Unit) -> None:
    await backup_records.on_failed(msg, unit)
    for row in await repo.restores_waiting(unit.session, "pre_backup_id", msg.backup_id, "backing_up"):
        await _fail(unit.session, row, f"the backup taken first failed, nothing was restored: {msg.reason}")


async def on_database_changed(deps: Deps, msg: DatabaseChanged, unit: Unit) -> None:
    """The database's state, then the restores into it that waited for it to run."""
    await databases.on_changed(msg, unit)
    if msg.state == "running":
        for row in await repo.restores_waiting(unit.session, "target_database_id", msg.database_id, "waiting"):
            await send(deps, unit, row)
    elif msg.state in ("failed", "removed"):
        for row in await repo.restores_waiting(unit.session, "target_database_id", msg.database_id, "waiting"):
            await _fail(unit.session, row, f"the new database did not start: {msg.reason or msg.state}")


async def on_restored(msg: RestoreSucceeded | RestoreFailed, unit: Unit) -> None:
    row = await repo.get_restore(unit.session, msg.team_id, msg.restore_id, lock=True)
    if row is None or row["state"] in ("succeeded", "failed"):
        return
    if isinstance(msg, RestoreSucceeded):
        values: dict[str, Any] = {"state": "succeeded", "reason": "", "duration_s": msg.duration_s}
    else:
        values = {"state": "failed", "reason": msg.reason}
    await repo.update_restore(unit.session, row["id"], {**values, "finished_at": datetime.now(UTC)})
    log.info("restore finished", restore_id=row["id"], state=values["state"])
