"""The api's records of backups: the projection of the scheduler's ``evt.backup.*`` answers into its
``backups`` table, and which stored copy of a backup a restore or a drill reads.

The answers (``evt.backup.started``, ``evt.backup.succeeded``, ``evt.backup.failed``, ``evt.backup.missed``)
move a backup's row on: ``running``, then ``succeeded`` with its verified objects or ``failed`` with the
reason; a schedule's run (a backup id the api did not make) gets its row from its first event, ``missed``
included, with the database or volume its schedule names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import backups as repo
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import backup_destinations as destinations
from berth_common.catalogue import BackupFailed, BackupMissed, BackupStarted, BackupSucceeded
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


def named(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The destinations as a backup's row keeps them: each id with the name the scheduler's events give it."""
    return [{"id": r["id"], "name": destinations.name_of(r)} for r in rows]


def object_of(backup: dict[str, Any], wanted: str | None, existing: set[str]) -> tuple[str, dict[str, Any]]:
    """(destination id, object) of the backup to restore from: the destination asked for, or the first
    one of the backup's destinations the team still has."""
    ids = {d["name"]: d["id"] for d in backup["destinations"]}
    for obj in backup["objects"]:
        destination_id = ids.get(obj["destination"])
        if destination_id is None or destination_id not in existing:
            continue
        if wanted is None or wanted == destination_id:
            return destination_id, obj
    if wanted is not None:
        raise invalid_field("/body/destination", f"the backup has no copy in destination {wanted}")
    raise ProblemError(409, "None of the backup's destinations exists any more; it cannot be restored.")


async def _row_for(
    unit: Unit, msg: BackupStarted | BackupSucceeded | BackupFailed | BackupMissed
) -> dict[str, Any] | None:
    """The backup's row, made from the schedule when the backup is a schedule's run (None: the team is gone)."""
    s = unit.session
    row = await repo.get_backup(s, msg.team_id, msg.backup_id, lock=True)
    if row is not None:
        return row
    schedule = await repo.get_schedule(s, msg.team_id, msg.database_id)
    kept: list[dict[str, str]] = []
    if schedule is not None:
        rows = await repo.destinations_with_secrets(s, msg.team_id, list(schedule["destination_ids"]))
        kept = named(rows)
    if not await repo.team_exists(s, msg.team_id):  # the team is gone: nothing to show it to
        log.info("backup answer of an unknown team ignored", backup_id=msg.backup_id)
        return None
    values = {
        "id": msg.backup_id,
        "team_id": msg.team_id,
        "database_id": msg.database_id,
        "state": "requested",
        "destinations": kept,
        "objects": [],
        "schedule_id": msg.database_id if isinstance(msg, BackupMissed) or schedule else None,
        **{k: schedule[k] for k in ("application_id", "volume") if schedule is not None},
    }
    if schedule is not None and schedule.get("source"):
        values["server_id"] = schedule["source"].get("server_id")
    return await repo.insert_backup(s, values)


async def on_started(msg: BackupStarted, unit: Unit) -> None:
    row = await _row_for(unit, msg)
    if row is None or row["state"] != "requested":
        return
    values = {"state": "running", "engine": msg.engine, "database": msg.database, "started_at": datetime.now(UTC)}
    await repo.update_backup(unit.session, msg.backup_id, values)


async def on_succeeded(msg: BackupSucceeded, unit: Unit) -> dict[str, Any] | None:
    row = await _row_for(unit, msg)
    if row is None or row["state"] in ("succeeded", "failed"):
        return None
    values = {
        "state": "succeeded",
        "reason": "",
        "engine": msg.engine,
        "database": msg.database,
        "compression": msg.compression,
        "objects": [o.model_dump() for o in msg.objects],
        "duration_s": msg.duration_s,
        "finished_at": datetime.now(UTC),
    }
    log.info("backup succeeded", backup_id=msg.backup_id, objects=len(msg.objects))
    return await repo.update_backup(unit.session, msg.backup_id, values)


async def on_failed(msg: BackupFailed, unit: Unit) -> dict[str, Any] | None:
    row = await _row_for(unit, msg)
    if row is None or row["state"] in ("succeeded", "failed"):
        return None
    values = {"state": "failed", "reason": msg.reason, "engine": msg.engine, "finished_at": datetime.now(UTC)}
    log.warning("backup failed", backup_id=msg.backup_id)
    return await repo.update_backup(unit.session, msg.backup_id, values)


async def on_missed(msg: BackupMissed, unit: Unit) -> None:
    row = await _row_for(unit, msg)
    if row is None or row["state"] != "requested":
        return
    reason = f"the schedule did not run at {msg.due_at}" + (f": {msg.reason}" if msg.reason else "")
    await repo.update_backup(
        unit.session, msg.backup_id, {"state": "missed", "reason": reason, "finished_at": datetime.now(UTC)}
    )
