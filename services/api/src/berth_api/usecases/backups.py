"""A database's backups: on demand (``cmd.backup.start``) and on a schedule (``cmd.schedule.set`` carrying
that command as its template), and the api's projection of the scheduler's ``evt.backup.*`` answers.

The command is built from the database record (its server, container, engine, database, user and password)
and the team's destinations (an S3 secret key opened from its row); the catalogue seals both secrets for
the bus. A backup's row is written in the transaction that stages its command (the outbox), and the
answers (``evt.backup.started``, ``evt.backup.succeeded``, ``evt.backup.failed``, ``evt.backup.missed``)
move it on: ``running``, then ``succeeded`` with its verified objects or ``failed`` with the reason;
a schedule's run (a backup id the api did not make) gets its row from its first event, ``missed`` included.
No answer of the api carries a secret: the objects name their destination, key, size and SHA-256. The
projection of the answers is ``usecases.backup_records``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from berth_api.adapters import backups as repo
from berth_api.adapters import databases as db_repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps, backup_keys, backup_records
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.connection_urls import _aad as database_aad
from berth_api.usecases.connection_urls import database_missing
from berth_api.usecases.deployments import run
from berth_common import dbengines
from berth_common.catalogue import (
    BackupKey,
    BackupSource,
    DrillBackup,
    RemoveSchedule,
    Retention,
    SetSchedule,
    StartBackup,
    VolumeSource,
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


def _command(
    deps: Deps,
    backup_id: str,
    row: dict[str, Any],
    dests: list[dict[str, Any]],
    given: BackupInput,
    encryption: BackupKey | None = None,
) -> StartBackup:
    return command_for(deps, backup_id, row["team_id"], row["id"], source_of(deps, row), dests, given, encryption)


def command_for(
    deps: Deps,
    backup_id: str,
    team_id: str,
    target_id: str,
    source: BackupSource | VolumeSource,
    dests: list[dict[str, Any]],
    given: BackupInput,
    encryption: BackupKey | None = None,
) -> StartBackup:
    """The backup command of ``source`` (a database or a volume; ``target_id``: what retention groups by),
    encrypted with ``encryption`` (the team's key) when given."""
    try:
        return StartBackup(
            backup_id=backup_id,
            team_id=team_id,
            database_id=target_id,
            source=source,
            destinations=[destinations.wire_destination(deps, d) for d in dests],
            compression=given.compression,  # type: ignore[arg-type]
            retention=Retention(**(given.retention or {})),
            encryption=encryption,
        )
    except ValidationError as exc:
        raise body_error(exc) from None


def body_error(exc: ValidationError) -> ProblemError:
    """The first error of a catalogue model built from a request, as the 422 naming its field."""
    error = exc.errors()[0]
    return invalid_field("/body/" + "/".join(str(p) for p in error["loc"]), error["msg"])


async def stage_backup(
    deps: Deps, unit: Unit, principal: Principal, row: dict[str, Any], dests: list[dict[str, Any]], given: BackupInput
) -> dict[str, Any]:
    """Write the backup's row and stage its command in ``unit`` (the caller's transaction)."""
    extra = {"engine": row["engine"], "database": row["database"]}
    return await stage(deps, unit, principal, (row["team_id"], row["id"], source_of(deps, row)), dests, given, extra)


async def stage(
    deps: Deps,
    unit: Unit,
    principal: Principal,
    target: tuple[str, str, BackupSource | VolumeSource],
    dests: list[dict[str, Any]],
    given: BackupInput,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Write the backup's row (``extra``: its own columns) and stage the command of ``target`` (team id,
    target id, source) in ``unit`` (the caller's transaction)."""
    team_id, target_id, source = target
    backup_id = new_id()
    await hold_for_sealing(unit.session, deps.box)
    encryption = await _encryption(deps, unit, team_id, given.encrypt, dests)
    command = command_for(deps, backup_id, team_id, target_id, source, dests, given, encryption)
    backup = await repo.insert_backup(
        unit.session,
        {
            "id": backup_id,
            "team_id": team_id,
            "database_id": target_id,
            "state": "requested",
            "compression": command.compression,
            "destinations": backup_records.named(dests),
            "objects": [],
            "requested_by": principal.user_id,
            **extra,
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
    return await of_database(deps, principal, database_id, repo.backups_of)


async def of_database(
    deps: Deps,
    principal: Principal,
    database_id: str,
    read: Callable[[Any, str, str], Awaitable[list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """The rows ``read`` gives for one of the team's databases (its backups, its drills); 404 when the team
    has no such database."""
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        return await read(s, principal.team_id, database_id)


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
    return await put_schedule(deps, unit, principal, (database_id, source_of(deps, row)), given, {})


async def put_schedule(
    deps: Deps,
    unit: Unit,
    principal: Principal,
    target: tuple[str, BackupSource | VolumeSource],
    given: ScheduleInput,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Send ``cmd.schedule.set`` for ``target`` (its id, also the schedule's, and its source) with the backup
    command as it would be built now, and keep the schedule (``extra``: its own columns)."""
    target_id, source = target
    dests = await destinations.resolve(deps, unit.session, principal, given.destinations, "/body/destinations")
    await hold_for_sealing(unit.session, deps.box)
    encryption = await _encryption(deps, unit, principal.team_id, given.encrypt, dests)
    given_now = BackupInput([], given.compression, given.retention, given.encrypt)
    template = command_for(deps, TEMPLATE_ID, principal.team_id, target_id, source, dests, given_now, encryption)
    command = await send_schedule(unit, principal.team_id, (target_id, target_id), given, template)
    return await repo.put_schedule(
        unit.session,
        {
            "database_id": target_id,
            "team_id": principal.team_id,
            "cron": command.cron,
            "timezone": command.timezone,
            "grace_s": command.grace_s,
            "destination_ids": list(given.destinations),
            "retention": template.retention.model_dump(),
            "compression": template.compression,
            "encrypt": given.encrypt,
            "revision": command.revision,
            "updated_by": principal.user_id,
            "updated_at": datetime.now(UTC),
            **extra,
        },
    )


async def send_schedule(
    unit: Unit, team_id: str, ids: tuple[str, str], when: Any, template: StartBackup | DrillBackup
) -> SetSchedule:
    """Stage ``cmd.schedule.set`` of the schedule ``ids`` (its id, its target's id) publishing ``template``
    on ``when``'s ``cron``, ``timezone`` and ``grace_s`` (422 naming the field the scheduler would refuse)."""
    schedule_id, target_id = ids
    try:
        command = SetSchedule(
            schedule_id=schedule_id,
            team_id=team_id,
            revision=_revision(),
            cron=when.cron,
            timezone=when.timezone,
            grace_s=when.grace_s,
            command_type=template.TYPE,
            command=template.model_dump(mode="json"),
            target_id=target_id,
        )
    except ValidationError as exc:
        raise body_error(exc) from None
    await unit.emit(command, id=f"schedule-set-{schedule_id}-{command.revision}")
    return command


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
            if row.get("source"):  # a volume's: its source as kept (no secret in it)
                extra = {k: row[k] for k in ("application_id", "volume", "source")}
                target = (row["database_id"], VolumeSource.model_validate(row["source"]))
                await put_schedule(deps, unit, principal, target, given, extra)
            else:
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
    """Send ``cmd.schedule.remove`` for the database's (or volume's) schedule and forget it (False: it has
    none)."""
    if await repo.get_schedule(unit.session, team_id, database_id) is None:
        return False
    await send_removal(unit, team_id, database_id)
    await repo.delete_schedule(unit.session, database_id)
    return True


async def unschedule_volumes(unit: Unit, team_id: str, application_id: str) -> int:
    """Send ``cmd.schedule.remove`` for every volume schedule of the application and forget them (it is
    being deleted: nothing writes its volumes any more, and nothing could change those schedules)."""
    rows = await repo.volume_schedules_of(unit.session, team_id, application_id)
    for row in rows:
        await unschedule(unit, team_id, row["database_id"])
    return len(rows)


async def send_removal(unit: Unit, team_id: str, schedule_id: str) -> None:
    """Stage ``cmd.schedule.remove`` of the schedule ``schedule_id``."""
    revision = _revision()
    command = RemoveSchedule(schedule_id=schedule_id, team_id=team_id, revision=revision)
    await unit.emit(command, id=f"schedule-remove-{schedule_id}-{revision}")


async def remove_schedule(deps: Deps, principal: Principal, database_id: str) -> None:
    async def body(unit: Unit) -> None:
        if await db_repo.get_database(unit.session, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        await unschedule(unit, principal.team_id, database_id)  # none: nothing to stop

    await run(deps, body)
    log.info("backup schedule removed", database_id=database_id)
