"""Minor-version upgrades of a database, with a backup taken first: ``cmd.database.upgrade`` and the answers
``evt.database.upgraded`` and ``evt.database.upgrade_failed``.

The upgrade is a saga in the api, like a restore over an existing database (``usecases/restores.py``),
because the backup it waits for is the api's own ``cmd.backup.start`` with its projection of the
``evt.backup.*`` answers: the upgrade's row is written (``backing_up``) in the transaction that stages the
backup, and the transaction that records ``evt.backup.succeeded`` sends the upgrade (``upgrading``). Both
steps are durable (the rows, the outbox, the ack after the commit), so an api restarted in between goes on
where it stopped. The backup goes to the destinations named in the request, else to those of the database's
backup schedule; with none, the upgrade is refused (409) unless an admin skips the backup explicitly
(``skip_backup``, recorded on the upgrade and in the audit log). A failed backup fails the upgrade and
nothing changes. Only a move within the engine's major line is accepted (``dbengines.check_upgrade``): a
major upgrade needs a dump and a restore, and the 422 says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import backups as backup_repo
from berth_api.adapters import database_upgrades as repo
from berth_api.adapters import databases as db_repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps, backups, databases, restores
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.connection_urls import database_missing
from berth_api.usecases.deployments import run
from berth_common import dbengines
from berth_common.catalogue import (
    BackupFailed,
    BackupSucceeded,
    DatabaseUpgraded,
    DatabaseUpgradeFailed,
    UpgradeDatabase,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
NO_DESTINATION = (
    "A backup destination is needed: an upgrade is taken after a verified backup. Name one in destinations, "
    "or give the database a backup schedule (an admin may skip the backup with skip_backup: true)."
)


@dataclass(frozen=True)
class UpgradeInput:
    version: str
    destinations: list[str] | None = None
    skip_backup: bool = False


async def start(deps: Deps, principal: Principal, database_id: str, given: UpgradeInput) -> dict[str, Any]:
    """Check the move, then stage the backup (or, skipped by an admin, the upgrade itself: the route lets only
    admins skip it)."""

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        row = await databases.locked(unit, principal, database_id, "be upgraded")
        try:
            dbengines.check_upgrade(row["engine"], row["version"], given.version)
        except dbengines.UpgradeError as exc:
            raise invalid_field("/body/version", str(exc)) from None
        if row["state"] != "running":
            raise ProblemError(409, f"The database is {row['state']}; an upgrade starts from a running database.")
        values: dict[str, Any] = {
            "id": new_id(),
            "team_id": principal.team_id,
            "database_id": database_id,
            "from_version": row["version"],
            "to_version": given.version,
            "state": "backing_up",
            "backup_skipped": given.skip_backup,
            "requested_by": principal.user_id,
        }
        if given.skip_backup:
            return await _send(deps, unit, row, await repo.insert_upgrade(s, values))
        schedule = await backup_repo.get_schedule(s, principal.team_id, database_id)
        ids = given.destinations if given.destinations is not None else _scheduled(schedule)
        if not ids:
            raise ProblemError(409, NO_DESTINATION)
        dests = await destinations.resolve(deps, s, principal, ids, "/body/destinations")
        compression = schedule["compression"] if schedule is not None else "gzip"
        backup = await backups.stage_backup(deps, unit, principal, row, dests, backups.BackupInput([], compression))
        return await repo.insert_upgrade(s, {**values, "backup_id": backup["id"]})

    upgrade = await run(deps, body)
    if given.skip_backup:
        log.warning("database upgrade without a backup", database_id=database_id, user_id=principal.user_id)
    log.info("database upgrade requested", database_id=database_id, upgrade_id=upgrade["id"], to=given.version)
    return upgrade


def _scheduled(schedule: dict[str, Any] | None) -> list[str]:
    return list(schedule["destination_ids"]) if schedule is not None else []


async def _send(deps: Deps, unit: Unit, row: dict[str, Any], upgrade: dict[str, Any]) -> dict[str, Any]:
    """Stage ``cmd.database.upgrade`` (the database's spec now, with the new version) and mark it sent."""
    s = unit.session
    old = databases.spec_of(deps, row)
    new = databases.spec_of(deps, {**row, "version": upgrade["to_version"]})
    command = UpgradeDatabase(request_id=upgrade["id"], spec=new, from_version=old.version, from_image=old.image)
    await unit.emit(command, id=f"database-upgrade-{upgrade['id']}")
    await db_repo.update_database(s, row["id"], {"request_id": upgrade["id"], "reason": ""})
    return await repo.update_upgrade(s, upgrade["id"], {"state": "upgrading"})


async def _fail(unit: Unit, upgrade: dict[str, Any], reason: str, rolled_back: bool | None = None) -> None:
    values = {"state": "failed", "reason": reason[:2000], "rolled_back": rolled_back, "finished_at": datetime.now(UTC)}
    await repo.update_upgrade(unit.session, upgrade["id"], values)


async def list_of(deps: Deps, principal: Principal, database_id: str) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await db_repo.get_database(s, principal.team_id, database_id) is None:
            raise database_missing(principal, database_id)
        return await repo.upgrades_of(s, principal.team_id, database_id)


# --- answers ------------------------------------------------------------------------------------------


async def on_backup_succeeded(deps: Deps, msg: BackupSucceeded, unit: Unit) -> None:
    """The backup's projection and the restores waiting for it, then the upgrades that waited for it."""
    await restores.on_backup_succeeded(deps, msg, unit)
    for upgrade in await repo.waiting_for_backup(unit.session, msg.backup_id):
        row = await db_repo.get_database(unit.session, upgrade["team_id"], upgrade["database_id"], sealed=True)
        if row is None or row["state"] in ("removing", "removed"):
            await _fail(unit, upgrade, "the database was removed before it could be upgraded")
            continue
        await _send(deps, unit, row, upgrade)
        log.info("database upgrade sent after its backup", upgrade_id=upgrade["id"], backup_id=msg.backup_id)


async def on_backup_failed(msg: BackupFailed, unit: Unit) -> None:
    await restores.on_backup_failed(msg, unit)
    for upgrade in await repo.waiting_for_backup(unit.session, msg.backup_id):
        await _fail(unit, upgrade, f"the backup taken first failed, nothing was upgraded: {msg.reason}")


async def on_answer(msg: DatabaseUpgraded | DatabaseUpgradeFailed, unit: Unit) -> None:
    """The scheduler's outcome: the database's version moves on, or the upgrade fails with the reason."""
    s = unit.session
    upgrade = await repo.get_upgrade(s, msg.request_id, lock=True)
    if upgrade is None or upgrade["state"] != "upgrading":
        log.info("stale upgrade answer ignored", database_id=msg.database_id, request_id=msg.request_id)
        return
    if isinstance(msg, DatabaseUpgradeFailed):
        await _fail(unit, upgrade, msg.reason, msg.rolled_back)
        log.warning("database upgrade failed", database_id=msg.database_id, rolled_back=msg.rolled_back)
        return
    values = {"state": "succeeded", "reason": "", "finished_at": datetime.now(UTC)}
    await repo.update_upgrade(s, upgrade["id"], values)
    if await db_repo.get_database(s, upgrade["team_id"], upgrade["database_id"], lock=True) is not None:
        await db_repo.update_database(s, upgrade["database_id"], {"version": msg.to_version})
    log.info("database upgraded", database_id=msg.database_id, version=msg.to_version)
