"""A team's one-click databases (PostgreSQL, MySQL, MariaDB, Redis, MongoDB) on one of its servers.

Creating one generates its credentials (``berth_common.dbengines``: a password from ``secrets``, sealed at
rest bound to the row like a registry's password) and sends ``cmd.database.run`` through the outbox in the
same transaction as the row; start, stop, restart and delete send their commands the same way, and the
scheduler's ``evt.database.changed`` sets the state (an answer to an older request is ignored). The
password is never answered: a separate route reveals the connection URL to the team's admins (audited).
Deleting one keeps its volume unless asked, and is refused while applications link it.

Rotating the credentials is a command too (``cmd.database.rotate``): the new password waits sealed in
``pending`` until the scheduler answers ``evt.database.credentials_rotated``; on success it replaces the old
one and every linked application with a live version is redeployed with the new connection URL (as an
environment group's change redeploys), on failure it is dropped and the old one stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError

from berth_api.adapters import backups as backup_repo
from berth_api.adapters import database_upgrades as upgrade_repo
from berth_api.adapters import databases as repo
from berth_api.adapters import drills as drill_repo
from berth_api.adapters import servers as server_repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken
from berth_api.usecases import Deps, published_ports
from berth_api.usecases.connection_urls import _aad, database_missing, url_of
from berth_api.usecases.deployments import run
from berth_common import dbengines
from berth_common.catalogue import (
    DatabaseChanged,
    DatabaseCredentialsRotated,
    DatabaseSpec,
    PublicAccess,
    RemoveDatabase,
    RestartDatabase,
    RotateDatabaseCredentials,
    RunDatabase,
    StartDatabase,
    StopDatabase,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
LOCAL = "local"


@dataclass(frozen=True)
class DatabaseInput:
    name: str
    engine: str
    version: str | None = None
    server_id: str = LOCAL
    limits: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    public: dict[str, Any] | None = None


def spec_of(deps: Deps, row: dict[str, Any], password: str | None = None) -> DatabaseSpec:
    """The scheduler's view of a database row (``row`` with its sealed password)."""
    secret = password if password is not None else deps.box.open(row["sealed"], _aad(row["id"]))
    return DatabaseSpec(
        database_id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        engine=row["engine"],
        version=row["version"],
        image=dbengines.engine(row["engine"]).image(row["version"]),
        server_id=row["server_id"],
        user=row["username"],
        password=SecretStr(secret),
        database=row["database"],
        config=row["config"],
        limits=row["limits"],
        public=row["public"],
    )


def connection(row: dict[str, Any]) -> dict[str, Any]:
    """Where the team's applications reach the database (and the public port, when published)."""
    engine = dbengines.engine(row["engine"])
    return {"host": dbengines.container_name(row["id"]), "port": engine.port, "variable": engine.variable}


def _validated(given: DatabaseInput) -> tuple[dbengines.Engine, str]:
    try:
        engine = dbengines.engine(given.engine)
    except ValueError as exc:
        raise invalid_field("/body/engine", str(exc)) from None
    version = given.version or engine.default_version
    try:
        engine.image(version)
    except ValueError as exc:
        raise invalid_field("/body/version", str(exc)) from None
    try:
        dbengines.validate_config(engine.name, given.config)
    except dbengines.ConfigError as exc:
        raise invalid_field(f"/body/config/{exc.name}" if exc.name else "/body/config", str(exc)) from None
    return engine, version


async def create(deps: Deps, principal: Principal, given: DatabaseInput) -> dict[str, Any]:
    engine, version = _validated(given)
    database_id, request_id = new_id(), new_id()
    creds = dbengines.generate_credentials(engine.name, given.name)

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        if given.server_id != LOCAL and await server_repo.get_server(s, principal.team_id, given.server_id) is None:
            raise invalid_field("/body/server_id", f"no server {given.server_id} in team {principal.team_name}")
        if given.public is not None:
            port = int(given.public["port"])
            if any(p == port for _, p in await repo.public_ports_on(s, given.server_id)):
                raise invalid_field("/body/public/port", f"port {port} is taken on this server", status=409)
            holder = await published_ports.holder_of(s, given.server_id, port, principal.team_id)
            if holder is not None:
                raise invalid_field(
                    "/body/public/port", f"port {port} of this server is published by {holder}", status=409
                )
        await hold_for_sealing(s, deps.box)
        row = await repo.insert_database(
            s,
            {
                "id": database_id,
                "team_id": principal.team_id,
                "name": given.name,
                "engine": engine.name,
                "version": version,
                "server_id": given.server_id,
                "username": creds.user,
                "database": creds.database,
                "sealed": deps.box.seal(creds.password, _aad(database_id)),
                "config": dict(given.config),
                "limits": dict(given.limits),
                "public": given.public,
                "state": "starting",
                "request_id": request_id,
                "created_by": principal.user_id,
            },
        )
        spec = spec_of(deps, {**row, "sealed": None}, creds.password)
        await unit.emit(RunDatabase(request_id=request_id, spec=spec), id=f"database-run-{request_id}")
        return row

    try:
        row = await run(deps, body)
    except IntegrityError:
        raise name_taken("database", given.name) from None
    except ValidationError as exc:  # a limit or the exposure the spec refuses
        raise invalid_field("/body", exc.errors()[0]["msg"]) from None
    log.info("database requested", database_id=database_id, engine=engine.name, team_id=principal.team_id)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    """The team's databases, each with its newest verified backup (None: none yet)."""
    async with deps.sessionmaker() as s:
        rows = await repo.list_databases(s, principal.team_id)
        verified = await backup_repo.newest_succeeded_by_database(s, principal.team_id)
    return [{**row, "last_verified_backup": verified.get(row["id"])} for row in rows]


async def get(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any]:
    """The database, with its newest verified backup and its newest finished drill (None: none yet)."""
    async with deps.sessionmaker() as s:
        row = await repo.get_database(s, principal.team_id, database_id)
        if row is None:
            raise database_missing(principal, database_id)
        backup = await backup_repo.newest_succeeded(s, principal.team_id, database_id)
        drill = await drill_repo.newest_finished(s, principal.team_id, database_id)
    return {**row, "last_verified_backup": backup, "last_drill": drill}


async def locked(unit: Unit, principal: Principal, database_id: str, action: str) -> dict[str, Any]:
    """The team's database (sealed, locked for the transaction) unless it is going away or busy: a rotation
    or an upgrade under way (409)."""
    row = await repo.get_database(unit.session, principal.team_id, database_id, sealed=True, lock=True)
    if row is None:
        raise database_missing(principal, database_id)
    if row["state"] in ("removing", "removed"):
        raise ProblemError(409, f"The database is being removed; it cannot {action}.")
    if row["pending"] is not None:
        raise ProblemError(409, f"A credential rotation of the database is running; it cannot {action} now.")
    if await upgrade_repo.active_upgrade(unit.session, database_id) is not None:
        raise ProblemError(409, f"An upgrade of the database is under way; it cannot {action} now.")
    return row


async def _command(deps: Deps, principal: Principal, database_id: str, action: str) -> dict[str, Any]:
    """Start, stop or restart: the state the database is going to, and its command (through the outbox)."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await locked(unit, principal, database_id, action)
        request_id = new_id()
        if action == "stop":
            state = "stopping"
            command: Any = StopDatabase(
                request_id=request_id, database_id=row["id"], team_id=row["team_id"], server_id=row["server_id"]
            )
        else:
            state = "starting"
            kind = RestartDatabase if action == "restart" else StartDatabase
            command = kind(request_id=request_id, spec=spec_of(deps, row))
        await unit.emit(command, id=f"database-{action}-{request_id}")
        return await repo.update_database(
            unit.session, row["id"], {"state": state, "reason": "", "request_id": request_id}
        )

    row = await run(deps, body)
    log.info(f"database {action} requested", database_id=database_id)
    return row


async def start(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any]:
    return await _command(deps, principal, database_id, "start")


async def stop(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any]:
    return await _command(deps, principal, database_id, "stop")


async def restart(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any]:
    return await _command(deps, principal, database_id, "restart")


async def delete(deps: Deps, principal: Principal, database_id: str, delete_volume: bool = False) -> dict[str, Any]:
    """Take the database down; its volume (its data) stays unless ``delete_volume``. Refused while linked."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await locked(unit, principal, database_id, "be deleted")
        linked = await repo.applications_linked_to(unit.session, database_id)
        if linked:
            raise ProblemError(409, f"{len(linked)} application(s) link the database; unlink them first.")
        request_id = new_id()
        command = RemoveDatabase(
            request_id=request_id,
            database_id=row["id"],
            team_id=row["team_id"],
            server_id=row["server_id"],
            keep_volume=not delete_volume,
        )
        await unit.emit(command, id=f"database-remove-{request_id}")
        from berth_api.usecases import backups, drills  # its backup and drill schedules stop with it

        await backups.unschedule(unit, row["team_id"], row["id"])
        await drills.unschedule(unit, row["team_id"], row["id"])
        return await repo.update_database(
            unit.session, row["id"], {"state": "removing", "reason": "", "request_id": request_id}
        )

    row = await run(deps, body)
    log.info("database removal requested", database_id=database_id, delete_volume=delete_volume)
    return row


async def rotate(deps: Deps, principal: Principal, database_id: str) -> dict[str, Any]:
    """Ask for a new password (``cmd.database.rotate``); applied when the scheduler confirms it."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await locked(unit, principal, database_id, "rotate its credentials")
        request_id, new_password = new_id(), dbengines.new_password()
        await hold_for_sealing(unit.session, deps.box)
        command = RotateDatabaseCredentials(
            request_id=request_id, spec=spec_of(deps, row), new_password=SecretStr(new_password)
        )
        await unit.emit(command, id=f"database-rotate-{request_id}")
        pending = deps.box.seal(new_password, _aad(row["id"], pending=True))
        values = {"pending": pending, "request_id": request_id, "reason": "", "rotated_by": principal.user_id}
        return await repo.update_database(unit.session, row["id"], values)

    row = await run(deps, body)
    log.info("database credential rotation requested", database_id=database_id)
    return row


async def connection_url(deps: Deps, principal: Principal, database_id: str) -> str:
    """The URL the team's applications connect with (for admins; the route audits the read)."""
    async with deps.sessionmaker() as s:
        row = await repo.get_database(s, principal.team_id, database_id, sealed=True)
    if row is None:
        raise database_missing(principal, database_id)
    return url_of(deps, row)


def public_of(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The exposure as the spec normalises it (CIDR blocks), or None."""
    return None if value is None else PublicAccess.model_validate(value).model_dump()


# --- the scheduler's answers ----------------------------------------------------------------------------


async def on_changed(msg: DatabaseChanged, unit: Unit) -> None:
    """Record the state the scheduler reports for the latest request (an older request's answer is ignored);
    ``removed`` forgets the database."""
    row = await repo.get_database(unit.session, msg.team_id, msg.database_id, lock=True)
    if row is None or row["request_id"] != msg.request_id:
        log.info("stale database answer ignored", database_id=msg.database_id, state=msg.state)
        return
    if msg.state == "removed":
        await repo.delete_database(unit.session, msg.database_id)
    else:
        values = {"state": msg.state, "reason": msg.reason, "published_port": msg.port}
        await repo.update_database(unit.session, msg.database_id, values)
    log.info("database state recorded", database_id=msg.database_id, state=msg.state)


async def on_rotated(deps: Deps, msg: DatabaseCredentialsRotated, unit: Unit) -> list[str]:
    """The new password replaces the old one (and linked applications are redeployed), or is dropped."""
    from berth_api.usecases import links

    s = unit.session
    row = await repo.get_database(s, msg.team_id, msg.database_id, sealed=True, lock=True)
    if row is None or row["pending"] is None or row["request_id"] != msg.request_id:
        log.info("stale rotation answer ignored", database_id=msg.database_id)
        return []
    if msg.outcome == "failed":
        await repo.update_database(s, row["id"], {"pending": None, "reason": msg.reason})
        log.warning("database credential rotation failed", database_id=row["id"])
        return []
    await hold_for_sealing(s, deps.box)
    password = deps.box.open(row["pending"], _aad(row["id"], pending=True))
    values = {"sealed": deps.box.seal(password, _aad(row["id"])), "pending": None, "rotated_at": datetime.now(UTC)}
    await repo.update_database(s, row["id"], values)
    started = await links.redeploy_linked(deps, unit, row)
    log.info("database credentials rotated", database_id=row["id"], redeployed=len(started))
    return started
