"""Restore drills of a database's backups: on demand (``cmd.backup.drill``) and on a schedule
(``cmd.schedule.set`` carrying that command, schedule id ``drill-<database id>``), and the api's projection
of the scheduler's ``evt.backup.drill_succeeded`` / ``evt.backup.drill_failed``.

A drill on demand names its backup (by default the database's newest verified one) and the copy it is read
from; a schedule's drill names only the destination, and the scheduler drills the newest verified backup it
recorded there at each run. The check is the catalogue's: row counts or one read-only query for
PostgreSQL and MariaDB, the key count or named keys for Redis; another engine is refused (422). A drill's
row is written in the transaction that stages its command; the answer sets the outcome, the check in
words and the values it found (a schedule's run gets its row from its answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from berth_api.adapters import backups as backup_repo
from berth_api.adapters import databases as db_repo
from berth_api.adapters import drills as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps, backup_keys, backup_records, backups
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.connection_urls import database_missing
from berth_api.usecases.deployments import run
from berth_common import streamcrypt
from berth_common.catalogue import DrillBackup, DrillFailed, DrillSucceeded, check_fits
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
TEMPLATE_ID = "schedule-template"
SCHEDULE_PREFIX = "drill-"


def drill_missing(principal: Principal, drill_id: str) -> ProblemError:
    return not_in_team("drill", drill_id, principal.team_name)


def schedule_id(database_id: str) -> str:
    return SCHEDULE_PREFIX + database_id


@dataclass(frozen=True)
class DrillInput:
    check: dict[str, Any]
    backup_id: str | None = None
    destination: str | None = None
    check_database: str | None = None


async def _database(session: Any, principal: Principal, database_id: str, check: dict[str, Any]) -> dict[str, Any]:
    """The database (404 across teams), its engine one drills run for and the check one it takes (422)."""
    row = await db_repo.get_database(session, principal.team_id, database_id)
    if row is None:
        raise database_missing(principal, database_id)
    why = check_fits(row["engine"], str(check.get("kind")))
    if why is not None:
        field = "/body/check/kind" if why.startswith("a ") else "/path/database_id"
        raise invalid_field(field, why)
    return row


def _command(row: dict[str, Any], drill_id: str, origin: Any, given: DrillInput, obj: dict[str, Any]) -> DrillBackup:
    try:
        return DrillBackup.model_validate(
            {
                "drill_id": drill_id,
                "team_id": row["team_id"],
                "database_id": row["id"],
                "origin": origin,
                "engine": row["engine"],
                "version": row["version"],
                "database": row["database"],
                "check_database": given.check_database,
                "server_id": row["server_id"],
                "check": given.check,
                **obj,
            }
        )
    except ValidationError as exc:
        raise backups.body_error(exc) from None


async def _backup(session: Any, principal: Principal, database_id: str, backup_id: str | None) -> dict[str, Any]:
    """The backup to drill: the one named (this database's, succeeded) or the newest verified one."""
    if backup_id is None:
        backup = await backup_repo.newest_succeeded(session, principal.team_id, database_id)
        if backup is None:
            raise ProblemError(409, "The database has no verified backup to drill; back it up first.")
        return backup
    backup = await backup_repo.get_backup(session, principal.team_id, backup_id)
    if backup is None or backup["database_id"] != database_id:
        raise invalid_field("/body/backup_id", f"no backup {backup_id} of database {database_id}")
    if backup["state"] != "succeeded":
        raise ProblemError(409, f"The backup is {backup['state']}; only a verified (succeeded) backup is drilled.")
    return backup


async def start(deps: Deps, principal: Principal, database_id: str, given: DrillInput) -> dict[str, Any]:
    drill_id = new_id()

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        row = await _database(s, principal, database_id, given.check)
        backup = await _backup(s, principal, database_id, given.backup_id)
        existing = {r["id"] for r in await backup_repo.list_destinations(s, principal.team_id)}
        origin_id, obj = backup_records.object_of(backup, given.destination, existing)
        (origin,) = await destinations.resolve(deps, s, principal, [origin_id], "/body/destination")
        await hold_for_sealing(s, deps.box)
        named = {"backup_id": backup["id"], "key": obj["key"], "sha256": obj["sha256"]}
        named["compression"] = backup["compression"] or "gzip"
        if obj["key"].endswith(streamcrypt.SUFFIX):  # encrypted with the team's key: the drill opens it
            named["encryption"] = await backup_keys.team_key(deps, s, principal.team_id)
        command = _command(row, drill_id, destinations.wire_destination(deps, origin), given, named)
        drill = await repo.insert_drill(
            s,
            {
                "id": drill_id,
                "team_id": principal.team_id,
                "database_id": database_id,
                "backup_id": backup["id"],
                "state": "requested",
                "engine": row["engine"],
                "destination_id": origin_id,
                "check": command.check.model_dump(mode="json"),
                "values": [],
                "requested_by": principal.user_id,
            },
        )
        await unit.emit(command, id=f"backup-drill-{drill_id}")
        return drill

    drill = await run(deps, body)
    log.info("drill requested", drill_id=drill_id, database_id=database_id, backup_id=drill["backup_id"])
    return drill


async def list_of(deps: Deps, principal: Principal, database_id: str) -> list[dict[str, Any]]:
    return await backups.of_database(deps, principal, database_id, repo.drills_of)


async def get(deps: Deps, principal: Principal, drill_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_drill(s, principal.team_id, drill_id)
    if row is None:
        raise drill_missing(principal, drill_id)
    return row


# --- schedules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillScheduleInput:
    cron: str
    timezone: str
    destination: str
    check: dict[str, Any]
    check_database: str | None = None
    grace_s: int = 300


async def _put_schedule(
    deps: Deps, unit: Unit, principal: Principal, database_id: str, given: DrillScheduleInput
) -> dict[str, Any]:
    """Send ``cmd.schedule.set`` with the drill command as it would be built now, and keep the schedule."""
    s = unit.session
    row = await _database(s, principal, database_id, given.check)
    (origin,) = await destinations.resolve(deps, s, principal, [given.destination], "/body/destination")
    await hold_for_sealing(s, deps.box)
    asked = DrillInput(given.check, check_database=given.check_database)
    # the backup a scheduled drill takes is the newest one then, maybe encrypted: the team's key goes along
    key = {"encryption": await backup_keys.team_key(deps, s, principal.team_id)}
    template = _command(row, TEMPLATE_ID, destinations.wire_destination(deps, origin), asked, key)
    command = await backups.send_schedule(
        unit, principal.team_id, (schedule_id(database_id), database_id), given, template
    )
    return await repo.put_schedule(
        s,
        {
            "database_id": database_id,
            "team_id": principal.team_id,
            "cron": command.cron,
            "timezone": command.timezone,
            "grace_s": command.grace_s,
            "destination_id": given.destination,
            "check": {**template.check.model_dump(mode="json"), "check_database": given.check_database},
            "revision": command.revision,
            "updated_by": principal.user_id,
            "updated_at": datetime.now(UTC),
        },
    )


async def set_schedule(deps: Deps, principal: Principal, database_id: str, given: DrillScheduleInput) -> dict[str, Any]:
    async def body(unit: Unit) -> dict[str, Any]:
        return await _put_schedule(deps, unit, principal, database_id, given)

    row = await run(deps, body)
    log.info("drill schedule set", database_id=database_id, cron=row["cron"], timezone=row["timezone"])
    return row


async def get_schedule(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any] | None:
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        return await repo.get_schedule(s, principal.team_id, database_id)


async def unschedule(unit: Unit, team_id: str, database_id: str) -> bool:
    """Send ``cmd.schedule.remove`` for the database's drill schedule and forget it (False: it has none)."""
    if await repo.get_schedule(unit.session, team_id, database_id) is None:
        return False
    await backups.send_removal(unit, team_id, schedule_id(database_id))
    await repo.delete_schedule(unit.session, database_id)
    return True


async def remove_schedule(deps: Deps, principal: Principal, database_id: str) -> None:
    async def body(unit: Unit) -> None:
        if await db_repo.get_database(unit.session, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        await unschedule(unit, principal.team_id, database_id)  # none: nothing to stop

    await run(deps, body)
    log.info("drill schedule removed", database_id=database_id)


def _stored(row: dict[str, Any]) -> DrillScheduleInput:
    check = dict(row["check"])
    check_database = check.pop("check_database", None)
    return DrillScheduleInput(
        row["cron"], row["timezone"], row["destination_id"], check, check_database, row["grace_s"]
    )


async def update_destination(
    deps: Deps, principal: Principal, destination_id: str, values: dict[str, Any], secret: str | None
) -> dict[str, Any]:
    """Change a destination, and send again every backup and drill schedule that uses it, in one transaction."""

    async def resend(unit: Unit) -> int:
        sent = await backups.resend_schedules(deps, unit, principal, destination_id)
        for row in await repo.schedules_using(unit.session, principal.team_id, destination_id):
            await _put_schedule(deps, unit, principal, row["database_id"], _stored(row))
            sent += 1
        return sent

    return await destinations.update(deps, principal, destination_id, values, secret, then=resend)


# --- the scheduler's answers --------------------------------------------------------------------------


async def on_ended(msg: DrillSucceeded | DrillFailed, unit: Unit) -> None:
    """The drill's outcome (its row made first when it is a schedule's run)."""
    s = unit.session
    row = await repo.get_drill(s, msg.team_id, msg.drill_id, lock=True)
    if row is None:
        if not await backup_repo.team_exists(s, msg.team_id):
            log.info("drill answer of an unknown team ignored", drill_id=msg.drill_id)
            return
        schedule = await repo.get_schedule(s, msg.team_id, msg.database_id)
        values: dict[str, Any] = {
            "id": msg.drill_id,
            "team_id": msg.team_id,
            "database_id": msg.database_id,
            "state": "requested",
            "values": [],
            "schedule_id": schedule_id(msg.database_id) if schedule is not None else None,
            "destination_id": None if schedule is None else schedule["destination_id"],
        }
        row = await repo.insert_drill(s, values)
    if row["state"] != "requested":
        return
    change: dict[str, Any] = {
        "state": "succeeded" if isinstance(msg, DrillSucceeded) else "failed",
        "reason": msg.reason if isinstance(msg, DrillFailed) else "",
        "backup_id": msg.backup_id or row["backup_id"],
        "check_text": msg.check,
        "values": [v.model_dump() for v in msg.values],
        "restore_s": msg.restore_s,
        "duration_s": msg.duration_s,
        "finished_at": datetime.now(UTC),
    }
    await repo.update_drill(s, row["id"], change)
    log.info("drill finished", drill_id=msg.drill_id, state=change["state"])
