"""A database's backups: on demand (``cmd.backup.start``) and on a schedule (``cmd.schedule.set`` carrying
that command as its template), and the api's projection of the scheduler's ``evt.backup.*`` answers.

The command is built from the database record (its server, container, engine, database, user and password)
and the team's destinations (an S3 secret key opened from its row); the catalogue seals both secrets for
the bus. A backup's row is written in the transaction that stages its command (the outbox), and the
answers (``evt.backup.started``, ``evt.backup.succeeded``, ``evt.backup.failed``, ``evt.backup.missed``)
move it on: ``running``, then ``succeeded`` with its verified objects or ``failed`` with the reason;
a schedule's run (a backup id the api did not make) gets its row from its first event, ``missed`` included.
No answer of the api carries a secret: the objects name their destination, key, size and SHA-256.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from berth_api.adapters import backups as repo
from berth_api.adapters import databases as db_repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps, backup_keys
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.connection_urls import _aad as database_aad
from berth_api.usecases.connection_urls import database_missing
from berth_api.usecases.deployments import run
from berth_common import dbengines
from berth_common.catalogue import (
    BackupFailed,
    BackupKey,
    BackupMissed,
    BackupSource,
    BackupStarted,
    BackupSucceeded,
    RemoveSchedule,
    Retention,
    SetSchedule,
    StartBackup,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
TEMPLATE_ID = "schedule-template"  # the backup id of a schedule's template (each run gets its own)


DEFAULT_COMPRESSION = "zstd"  # faster than gzip -6 at a similar or better ratio, and faster to restore


@dataclass(frozen=True)
class BackupInput:
    destinations: list[str]
    compression: str = DEFAULT_COMPRESSION
    retention: dict[str, Any] | None = None
    encrypt: bool = False  # also encrypted when one of the destinations says ``encrypt``


def encrypts(asked: bool, dests: list[dict[str, Any]]) -> bool:
    """A backup is encrypted with the team's key when the request (or schedule) asks for it, or when any of
    its destinations does: the copies are the same bytes, so one destination's rule covers them all."""
    return asked or any(bool(d["settings"].get("encrypt")) for d in dests)


async def _encryption(
    deps: Deps, unit: Unit, team_id: str, asked: bool, dests: list[dict[str, Any]]
) -> BackupKey | None:
    return await backup_keys.team_key(deps, unit.session, team_id) if encrypts(asked, dests) else None


def backup_missing(principal: Principal, backup_id: str) -> ProblemError:
    return not_in_team("backup", backup_id, principal.team_name)


def source_of(deps: Deps, row: dict[str, Any]) -> BackupSource:
    """The database record (with its sealed password) as a backup command names it."""
    password = deps.box.open(row["sealed"], database_aad(row["id"]))
    user = {"user": row["username"]} if row["username"] else {}  # Redis has none: its password alone
    return BackupSource(
        server_id=row["server_id"],
        container=dbengines.container_name(row["id"]),
        engine=row["engine"],
        database=row["database"],
        password=SecretStr(password),
        **user,
    )


async def _database(unit: Unit, principal: Principal, database_id: str) -> dict[str, Any]:
    row = await db_repo.get_database(unit.session, principal.team_id, database_id, sealed=True)
    if row is None:
        raise database_missing(principal, database_id)
    if row["state"] in ("removing", "removed"):
        raise ProblemError(409, "The database is being removed; it cannot be backed up.")
    return row


def _named(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"id": r["id"], "name": destinations.name_of(r)} for r in rows]


def _command(
    deps: Deps,
    backup_id: str,
    row: dict[str, Any],
    dests: list[dict[str, Any]],
    given: BackupInput,
    encryption: BackupKey | None = None,
) -> StartBackup:
    try:
        return StartBackup(
            backup_id=backup_id,
            team_id=row["team_id"],
            database_id=row["id"],
            source=source_of(deps, row),
            destinations=[destinations.wire_destination(deps, d) for d in dests],
            compression=given.compression,  # type: ignore[arg-type]
            retention=Retention(**(given.retention or {})),
            encryption=encryption,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise invalid_field("/body/" + "/".join(str(p) for p in error["loc"]), error["msg"]) from None


async def stage_backup(
    deps: Deps, unit: Unit, principal: Principal, row: dict[str, Any], dests: list[dict[str, Any]], given: BackupInput
) -> dict[str, Any]:
    """Write the backup's row and stage its command in ``unit`` (the caller's transaction)."""
    backup_id = new_id()
    await hold_for_sealing(unit.session, deps.box)
    encryption = await _encryption(deps, unit, row["team_id"], given.encrypt, dests)
    command = _command(deps, backup_id, row, dests, given, encryption)
    backup = await repo.insert_backup(
        unit.session,
        {
            "id": backup_id,
            "team_id": row["team_id"],
            "database_id": row["id"],
            "state": "requested",
            "engine": row["engine"],
            "database": row["database"],
            "compression": command.compression,
            "destinations": _named(dests),
            "objects": [],
            "requested_by": principal.user_id,
        },
    )
    await unit.emit(command, id=f"backup-start-{backup_id}")
    return backup


async def start(deps: Deps, principal: Principal, database_id: str, given: BackupInput) -> dict[str, Any]:
    async def body(unit: Unit) -> dict[str, Any]:
        row = await _database(unit, principal, database_id)
        dests = await destinations.resolve(deps, unit.session, principal, given.destinations, "/body/destinations")
        return await stage_backup(deps, unit, principal, row, dests, given)

    backup = await run(deps, body)
    log.info("backup requested", backup_id=backup["id"], database_id=database_id, team_id=principal.team_id)
    return backup


async def list_of(deps: Deps, principal: Principal, database_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        return await repo.backups_of(s, principal.team_id, database_id)


async def get(deps: Deps, principal: Principal, backup_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_backup(s, principal.team_id, backup_id)
    if row is None:
        raise backup_missing(principal, backup_id)
    return row


# --- schedules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleInput:
    cron: str
    timezone: str
    destinations: list[str]
    retention: dict[str, Any]
    compression: str = DEFAULT_COMPRESSION
    grace_s: int = 300
    encrypt: bool = False


def _revision() -> int:
    """Grows with every change (removal included), even across a removal that forgot the row."""
    return time.time_ns() // 1000


async def _put_schedule(
    deps: Deps, unit: Unit, principal: Principal, database_id: str, given: ScheduleInput
) -> dict[str, Any]:
    """Send ``cmd.schedule.set`` with the backup command as it would be built now, and keep the schedule."""
    row = await _database(unit, principal, database_id)
    dests = await destinations.resolve(deps, unit.session, principal, given.destinations, "/body/destinations")
    await hold_for_sealing(unit.session, deps.box)
    encryption = await _encryption(deps, unit, principal.team_id, given.encrypt, dests)
    given_backup = BackupInput([], given.compression, given.retention, given.encrypt)
    template = _command(deps, TEMPLATE_ID, row, dests, given_backup, encryption)
    revision = _revision()
    try:
        command = SetSchedule(
            schedule_id=database_id,
            team_id=principal.team_id,
            revision=revision,
            cron=given.cron,
            timezone=given.timezone,
            grace_s=given.grace_s,
            command_type=StartBackup.TYPE,
            command=template.model_dump(mode="json"),
            target_id=database_id,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise invalid_field("/body/" + "/".join(str(p) for p in error["loc"]), error["msg"]) from None
    await unit.emit(command, id=f"schedule-set-{database_id}-{revision}")
    return await repo.put_schedule(
        unit.session,
        {
            "database_id": database_id,
            "team_id": principal.team_id,
            "cron": command.cron,
            "timezone": command.timezone,
            "grace_s": command.grace_s,
            "destination_ids": list(given.destinations),
            "retention": template.retention.model_dump(),
            "compression": template.compression,
            "encrypt": given.encrypt,
            "revision": revision,
            "updated_by": principal.user_id,
            "updated_at": datetime.now(UTC),
        },
    )


async def set_schedule(deps: Deps, principal: Principal, database_id: str, given: ScheduleInput) -> dict[str, Any]:
    async def body(unit: Unit) -> dict[str, Any]:
        return await _put_schedule(deps, unit, principal, database_id, given)

    row = await run(deps, body)
    log.info("backup schedule set", database_id=database_id, cron=row["cron"], timezone=row["timezone"])
    return row


async def update_destination(
    deps: Deps, principal: Principal, destination_id: str, values: dict[str, Any], secret: str | None
) -> dict[str, Any]:
    """Change a destination, and send again every schedule that uses it, in one transaction."""

    async def resend(unit: Unit) -> int:
        return await resend_schedules(deps, unit, principal, destination_id)

    return await destinations.update(deps, principal, destination_id, values, secret, then=resend)


async def resend_schedules(deps: Deps, unit: Unit, principal: Principal, destination_id: str) -> int:
    """After a destination changed: every schedule using it is sent again with the new settings (its
    template carries them, secret key included)."""
    sent = 0
    for row in await repo.schedules_of(unit.session, principal.team_id):
        if destination_id in row["destination_ids"]:
            retention = {k: v for k, v in row["retention"].items() if v is not None}
            given = ScheduleInput(
                row["cron"],
                row["timezone"],
                list(row["destination_ids"]),
                retention,
                row["compression"],
                row["grace_s"],
                bool(row.get("encrypt")),
            )
            await _put_schedule(deps, unit, principal, row["database_id"], given)
            sent += 1
    return sent


async def get_schedule(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any] | None:
    """The database's schedule, or None when it has none."""
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        return await repo.get_schedule(s, principal.team_id, database_id)


async def unschedule(unit: Unit, team_id: str, database_id: str) -> bool:
    """Send ``cmd.schedule.remove`` for the database's schedule and forget it (False: it has none)."""
    if await repo.get_schedule(unit.session, team_id, database_id) is None:
        return False
    revision = _revision()
    command = RemoveSchedule(schedule_id=database_id, team_id=team_id, revision=revision)
    await unit.emit(command, id=f"schedule-remove-{database_id}-{revision}")
    await repo.delete_schedule(unit.session, database_id)
    return True


async def remove_schedule(deps: Deps, principal: Principal, database_id: str) -> None:
    async def body(unit: Unit) -> None:
        if await db_repo.get_database(unit.session, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        await unschedule(unit, principal.team_id, database_id)  # none: nothing to stop

    await run(deps, body)
    log.info("backup schedule removed", database_id=database_id)


# --- the scheduler's answers --------------------------------------------------------------------------


async def _row_for(
    unit: Unit, msg: BackupStarted | BackupSucceeded | BackupFailed | BackupMissed
) -> dict[str, Any] | None:
    """The backup's row, made from the schedule when the backup is a schedule's run (None: the team is gone)."""
    s = unit.session
    row = await repo.get_backup(s, msg.team_id, msg.backup_id, lock=True)
    if row is not None:
        return row
    schedule = await repo.get_schedule(s, msg.team_id, msg.database_id)
    named: list[dict[str, str]] = []
    if schedule is not None:
        rows = await repo.destinations_with_secrets(s, msg.team_id, list(schedule["destination_ids"]))
        named = _named(rows)
    if not await repo.team_exists(s, msg.team_id):  # the team is gone: nothing to show it to
        log.info("backup answer of an unknown team ignored", backup_id=msg.backup_id)
        return None
    values = {
        "id": msg.backup_id,
        "team_id": msg.team_id,
        "database_id": msg.database_id,
        "state": "requested",
        "destinations": named,
        "objects": [],
        "schedule_id": msg.database_id if isinstance(msg, BackupMissed) or schedule else None,
    }
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
