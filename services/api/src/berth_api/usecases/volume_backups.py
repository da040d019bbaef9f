"""An application's named volume backed up (``cmd.backup.start`` with a ``VolumeSource``), on a schedule
(``cmd.schedule.set``), and restored (``cmd.backup.restore``): the database backups' rules, reused.

A volume is ``berth-<application id>-<name>`` on each server that runs a service mounting it; the request
names the volume by its name in the application's services (a 404 naming ``/path/volume`` otherwise, as an
unknown service of an application is) and, when it is on more than one server, the server (422 naming
``/body/server_id``). Its backups, restores and schedule are kept in the backups' tables
under the volume's key (``domain.mounts.volume_key``, in place of a database id), with the application and
the volume's name. ``stop_service`` stops the service that mounts the volume while it is read or written
(and starts it again, whatever happened). A restore goes into a new volume of the application by default;
over the existing one only with ``confirm``, after a fresh backup of it succeeded (as a database's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from berth_api.adapters import applications as app_repo
from berth_api.adapters import backups as repo
from berth_api.domain import mounts
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps, backup_records, backups, restores
from berth_api.usecases import backup_destinations as destinations
from berth_api.usecases.applications import application_missing
from berth_api.usecases.deployments import run
from berth_common.catalogue import VOLUME_ENGINE, VolumeSource, docker_volume_name
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger
from berth_common.streamcrypt import SUFFIX

log = get_logger(__name__)


@dataclass(frozen=True)
class Volume:
    """A named volume of an application on one server, as backups know it."""

    team_id: str
    application_id: str
    name: str
    server_id: str
    services: list[str]  # the services that mount it there

    @property
    def key(self) -> str:
        return mounts.volume_key(self.application_id, self.server_id, self.name)

    @property
    def docker_name(self) -> str:
        return docker_volume_name(self.application_id, self.name)

    def source(self, stop_service: bool, name: str | None = None) -> VolumeSource:
        """The volume (or the new one ``name`` of the application) as a command names it; ``stop_service``:
        the one service mounting it stopped meanwhile."""
        stop = None
        if stop_service:
            if len(self.services) != 1:
                which = ", ".join(self.services) or "none"
                raise invalid_field(
                    "/body/stop_service", f"stop_service needs one service mounting volume {self.name}: {which}"
                )
            stop = self.services[0]
        volume = docker_volume_name(self.application_id, name) if name else self.docker_name
        try:
            return VolumeSource(
                server_id=self.server_id, volume=volume, application_id=self.application_id, stop_service=stop
            )
        except ValidationError:  # only a new volume's name can make it too long
            raise invalid_field("/body/name", f"the volume's Docker name {volume} is longer than 64") from None

    def columns(self) -> dict[str, Any]:
        return {"application_id": self.application_id, "volume": self.name}


async def _volume(
    session: Any,
    principal: Principal,
    application_id: str,
    name: str,
    server_id: str | None,
    *,
    first: bool = False,
    where: str = "/body/server_id",
) -> Volume:
    """The application's volume ``name`` on ``server_id`` (None: its only server, or with ``first`` its first
    one; ``where`` names the field that gives it); 404 for an application the team does not have, or for a
    volume it does not declare (naming ``/path/volume``)."""
    app = await app_repo.get_application(session, principal.team_id, application_id)
    if app is None:
        raise application_missing(principal, application_id)
    services = (app.get("config") or {}).get("services") or []
    servers = [v["server_id"] for v in mounts.kept_volumes(services, application_id) if v["name"] == name]
    if not servers:
        raise volume_missing(name, services, application_id)
    if server_id is None:
        if len(servers) > 1 and not first:
            raise invalid_field(where, f"volume {name} is on servers {', '.join(servers)}: name one")
        server_id = servers[0]
    elif server_id not in servers:
        raise invalid_field(where, f"volume {name} is not on server {server_id}: {', '.join(servers)}")
    return Volume(principal.team_id, application_id, name, server_id, mounts.mounting(services, name, server_id))


def volume_missing(name: str, services: list[Any], application_id: str) -> ProblemError:
    declared = sorted({v["name"] for v in mounts.kept_volumes(services, application_id)}) or ["none"]
    detail = f"the application has no volume {name}; its volumes: {', '.join(declared)}"
    errors = [{"loc": "/path/volume", "detail": detail, "type": "not_found"}]
    return ProblemError(404, f"The application has no volume {name}.", errors=errors)


def _extra(volume: Volume) -> dict[str, Any]:
    return {"engine": VOLUME_ENGINE, "database": volume.docker_name, "server_id": volume.server_id, **volume.columns()}


@dataclass(frozen=True)
class VolumeBackupInput:
    backup: backups.BackupInput
    stop_service: bool = False
    server_id: str | None = None


async def start(
    deps: Deps, principal: Principal, application_id: str, name: str, given: VolumeBackupInput
) -> dict[str, Any]:
    async def body(unit: Unit) -> dict[str, Any]:
        volume = await _volume(unit.session, principal, application_id, name, given.server_id)
        source = volume.source(given.stop_service)
        dests = await destinations.resolve(
            deps, unit.session, principal, given.backup.destinations, "/body/destinations"
        )
        target = (volume.team_id, volume.key, source)
        return await backups.stage(deps, unit, principal, target, dests, given.backup, _extra(volume))

    row = await run(deps, body)
    log.info("volume backup requested", backup_id=row["id"], application_id=application_id, volume=name)
    return row


async def list_of(deps: Deps, principal: Principal, application_id: str, name: str) -> list[dict[str, Any]]:
    """The volume's backups, newest first (also those of a volume the application no longer declares)."""
    async with deps.sessionmaker() as s:
        app = await app_repo.get_application(s, principal.team_id, application_id)
        if app is None:
            raise application_missing(principal, application_id)
        rows = await repo.backups_of_volume(s, principal.team_id, application_id, name)
    services = (app.get("config") or {}).get("services") or []
    if not rows and name not in {v["name"] for v in mounts.kept_volumes(services, application_id)}:
        raise volume_missing(name, services, application_id)
    return rows


# --- schedules ----------------------------------------------------------------------------------------


async def set_schedule(
    deps: Deps,
    principal: Principal,
    application_id: str,
    name: str,
    given: backups.ScheduleInput,
    backup: VolumeBackupInput,
) -> dict[str, Any]:
    async def body(unit: Unit) -> dict[str, Any]:
        volume = await _volume(unit.session, principal, application_id, name, backup.server_id)
        source = volume.source(backup.stop_service)
        extra = {**volume.columns(), "source": source.model_dump(mode="json")}
        return await backups.put_schedule(deps, unit, principal, (volume.key, source), given, extra)

    row = await run(deps, body)
    log.info("volume backup schedule set", application_id=application_id, volume=name, cron=row["cron"])
    return row


async def get_schedule(
    deps: Deps, principal: Principal, application_id: str, name: str, server_id: str | None
) -> dict[str, Any] | None:
    async with deps.sessionmaker() as s:
        volume = await _volume(s, principal, application_id, name, server_id, where="/query/server_id")
        return await repo.get_schedule(s, principal.team_id, volume.key)


async def remove_schedule(
    deps: Deps, principal: Principal, application_id: str, name: str, server_id: str | None
) -> None:
    async def body(unit: Unit) -> None:
        volume = await _volume(unit.session, principal, application_id, name, server_id, where="/query/server_id")
        await backups.unschedule(unit, principal.team_id, volume.key)  # none: nothing to stop

    await run(deps, body)
    log.info("volume backup schedule removed", application_id=application_id, volume=name)


# --- restores -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeRestoreInput:
    restore: restores.RestoreInput
    stop_service: bool | None = None  # None: stopped when restoring over the existing volume


async def restore(
    deps: Deps, principal: Principal, application_id: str, name: str, given: VolumeRestoreInput
) -> dict[str, Any]:
    asked = given.restore
    restore_id = new_id()

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        backup = await repo.get_backup(s, principal.team_id, asked.backup_id)
        ours = backup is not None and (backup["application_id"], backup["volume"]) == (application_id, name)
        server_id = backup["server_id"] if backup is not None and ours else None
        volume = await _volume(s, principal, application_id, name, server_id, first=not ours)
        if asked.target == "existing" and not asked.confirm:
            raise invalid_field("/body/confirm", "restoring over the existing volume needs confirm: true")
        if asked.target == "new" and not asked.name:
            raise invalid_field("/body/name", "restoring into a new volume needs its name")
        if backup is None or not ours:
            raise invalid_field("/body/backup_id", f"no backup {asked.backup_id} of volume {name}")
        if backup["state"] != "succeeded":
            raise ProblemError(409, f"The backup is {backup['state']}; only a verified (succeeded) backup restores.")
        existing = {r["id"] for r in await repo.list_destinations(s, principal.team_id)}
        origin_id, obj = backup_records.object_of(backup, asked.destination, existing)
        over = asked.target == "existing"
        if not over and asked.name == name:
            raise invalid_field("/body/name", f"{name} is the volume itself: restore over it with target existing")
        stop = given.stop_service if given.stop_service is not None else over and len(volume.services) == 1
        new = "" if over else str(asked.name)
        target = volume.source(stop, new or None)
        values = {
            "id": restore_id,
            "team_id": principal.team_id,
            "database_id": volume.key,
            "backup_id": backup["id"],
            "target_database_id": volume.key if over else mounts.volume_key(application_id, volume.server_id, new),
            "target": asked.target,
            "state": "running",
            "origin_id": origin_id,
            "key": obj["key"],
            "sha256": obj["sha256"],
            "compression": backup["compression"] or "gzip",
            "requested_by": principal.user_id,
            "target_source": target.model_dump(mode="json"),
            **volume.columns(),
        }
        if over:
            dests = await destinations.resolve(
                deps, s, principal, sorted(existing & {d["id"] for d in backup["destinations"]}), "/body/backup_id"
            )
            fresh = await backups.stage(
                deps,
                unit,
                principal,
                (volume.team_id, volume.key, volume.source(stop)),
                dests,
                # encrypted as the one restored was (and as its destinations ask)
                backups.BackupInput([], backup["compression"] or "gzip", encrypt=values["key"].endswith(SUFFIX)),
                _extra(volume),
            )
            values.update(state="backing_up", pre_backup_id=fresh["id"])
            return await repo.insert_restore(s, values)
        return await restores.send(deps, unit, await repo.insert_restore(s, {**values, "state": "waiting"}))

    row = await run(deps, body)
    log.info("volume restore requested", restore_id=restore_id, volume=name, target=asked.target)
    return row
